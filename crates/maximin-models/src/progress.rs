//! Progress of long steps (downloads, copies, extraction) on stderr: a bar on a
//! terminal, a plain line every few seconds otherwise (CI logs), or nothing.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How a pull reports what it is doing. Everything goes to stderr, so stdout
/// stays clean for `--json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Progress bars (for a terminal).
    Bar,
    /// Plain lines, at most one per step every few seconds.
    Lines,
    /// Nothing (tests, library use).
    Quiet,
}

const LINE_EVERY: Duration = Duration::from_secs(3);

impl Progress {
    /// Bars when stderr is a terminal, lines otherwise.
    pub fn auto() -> Self {
        if std::io::stderr().is_terminal() {
            Progress::Bar
        } else {
            Progress::Lines
        }
    }

    /// A one-off status line.
    pub(crate) fn note(self, msg: &str) {
        if self != Progress::Quiet {
            eprintln!("{msg}");
        }
    }

    /// Starts measuring a step of `total` bytes (when known).
    pub(crate) fn meter(self, label: &str, total: Option<u64>) -> Meter {
        let kind = match self {
            Progress::Quiet => Kind::Quiet,
            Progress::Bar => {
                let bar = match total {
                    Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr())
                        .with_style(
                            ProgressStyle::with_template(
                                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                            )
                            .unwrap_or_else(|_| ProgressStyle::default_bar())
                            .progress_chars("=> "),
                        ),
                    None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
                        .with_style(
                            ProgressStyle::with_template("{spinner} {msg} {bytes} {bytes_per_sec}")
                                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                        ),
                };
                bar.set_message(label.to_owned());
                Kind::Bar(bar)
            }
            Progress::Lines => {
                eprintln!(
                    "{label}: starting{}",
                    total.map_or(String::new(), |n| format!(" ({})", HumanBytes(n)))
                );
                let now = Instant::now();
                Kind::Lines {
                    label: label.to_owned(),
                    total,
                    done: 0,
                    started: now,
                    last: now,
                }
            }
        };
        Meter { kind }
    }
}

/// Progress of one step; see [`Progress::meter`].
pub(crate) struct Meter {
    kind: Kind,
}

enum Kind {
    Quiet,
    Bar(ProgressBar),
    Lines {
        label: String,
        total: Option<u64>,
        done: u64,
        started: Instant,
        last: Instant,
    },
}

impl Meter {
    pub(crate) fn inc(&mut self, n: u64) {
        match &mut self.kind {
            Kind::Quiet => {}
            Kind::Bar(bar) => bar.inc(n),
            Kind::Lines {
                label,
                total,
                done,
                last,
                ..
            } => {
                *done += n;
                if last.elapsed() >= LINE_EVERY {
                    *last = Instant::now();
                    match total {
                        Some(t) if *t > 0 => eprintln!(
                            "{label}: {} of {} ({}%)",
                            HumanBytes(*done),
                            HumanBytes(*t),
                            *done * 100 / *t
                        ),
                        _ => eprintln!("{label}: {}", HumanBytes(*done)),
                    }
                }
            }
        }
    }

    pub(crate) fn finish(self) {
        match self.kind {
            Kind::Quiet => {}
            Kind::Bar(bar) => bar.finish(),
            Kind::Lines {
                label,
                done,
                started,
                ..
            } => eprintln!(
                "{label}: done, {} in {:.1}s",
                HumanBytes(done),
                started.elapsed().as_secs_f64()
            ),
        }
    }
}
