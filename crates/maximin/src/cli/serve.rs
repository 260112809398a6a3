//! `maximin serve`: engines, first start, task runners, the retention
//! sweeper and the HTTP server.

use std::sync::Arc;
use std::time::Duration;

use maximin_core::engines::Engines;
use maximin_core::Platform;
use maximin_http::{AppState, Application};
#[cfg(feature = "espeak")]
use maximin_speech::LocalSpeech;

use super::{compose, first_start, open_platform, Failure};
use crate::config::Config;

/// The local engines built into this binary, by catalog engine name. With
/// `pulling`, the default models are being fetched: say nothing yet about
/// what they will bring.
fn engines(
    cfg: &crate::config::EngineConfig,
    models_dir: &std::path::Path,
    pulling: bool,
) -> Engines {
    #[cfg_attr(
        not(any(feature = "llama", feature = "bert", feature = "espeak")),
        expect(unused_mut, reason = "no engine features")
    )]
    let mut engines = Engines::default();
    #[cfg(feature = "llama")]
    {
        let mut opts = maximin_engine_llama::Options::default();
        if let Some(t) = cfg.threads {
            opts.threads = t;
        }
        if let Some(s) = cfg.chat_slots {
            opts.slots = s;
        }
        if let Some(c) = cfg.chat_context {
            opts.ctx_per_slot = c;
        }
        if let Some(q) = cfg.chat_queue {
            opts.queue = q;
        }
        if let Some(r) = cfg.chat_requantize {
            opts.requantize = r;
        }
        engines.chat.insert(
            maximin_engine_llama::ENGINE_NAME.to_owned(),
            Arc::new(maximin_engine_llama::LlamaEngine::new(opts)),
        );
        engines.fine_tune.insert(
            maximin_engine_llama::ENGINE_NAME.to_owned(),
            Arc::new(maximin_finetune::LocalFineTuner::new()),
        );
    }
    #[cfg(feature = "bert")]
    engines.embed.insert(
        maximin_engine_bert::ENGINE_NAME.to_owned(),
        Arc::new(maximin_engine_bert::BertEngine::new(
            cfg.threads.unwrap_or(0),
        )),
    );
    #[cfg(feature = "espeak")]
    match maximin_engine_espeak::EspeakEngine::shared() {
        Ok(espeak) => {
            #[cfg(feature = "piper")]
            {
                let lib = models_dir
                    .join("onnxruntime")
                    .join(maximin_core::catalog::ONNXRUNTIME_LIB);
                let piper = maximin_engine_piper::PiperEngine::new(
                    models_dir,
                    Some(&lib),
                    espeak.clone(),
                    cfg.threads.unwrap_or(0),
                );
                if let Some(why) = piper.unavailable().filter(|_| !pulling) {
                    tracing::info!(
                        "neural voices are off ({why}): run `maximin models pull onnxruntime` and `maximin models pull speech-2.8-hd`; speech-*-hd speaks with espeak-ng meanwhile"
                    );
                }
                engines.speech.insert(
                    maximin_engine_piper::ENGINE_NAME.to_owned(),
                    Arc::new(LocalSpeech::new(Arc::new(piper))),
                );
            }
            #[cfg(feature = "music")]
            music_engine(
                &mut engines,
                Some((Arc::new(espeak.clone()) as _, "en-us".to_owned())),
            );
            engines.speech.insert(
                maximin_engine_espeak::ENGINE_NAME.to_owned(),
                Arc::new(LocalSpeech::new(Arc::new(espeak))),
            );
        }
        Err(e) => tracing::warn!(error = %e.message, "espeak-ng is unavailable; speech is off"),
    }
    #[cfg(feature = "diffusion")]
    {
        let images = Arc::new(maximin_media::local::LocalImages::new(
            models_dir.to_path_buf(),
            cfg.threads.unwrap_or(0),
        ));
        engines.video.insert(
            maximin_media::local::VIDEO_ENGINE.to_owned(),
            Arc::new(maximin_media::local::LocalVideo::new(images.clone())),
        );
        engines
            .image
            .insert(maximin_media::local::IMAGE_ENGINE.to_owned(), images);
    }
    let _ = (cfg, models_dir, pulling);
    engines
}

/// The composer, singing with `voice` (a local speech engine and its voice id).
#[cfg(feature = "music")]
fn music_engine(
    engines: &mut Engines,
    voice: Option<(Arc<dyn maximin_core::engines::SpeechEngine>, String)>,
) {
    match maximin_media::composer::Composer::load(None, voice) {
        Ok(c) => {
            engines
                .music
                .insert(maximin_media::composer::ENGINE.to_owned(), Arc::new(c));
        }
        Err(why) => tracing::warn!("the local music engine is off: {why}"),
    }
}

/// The providers of every `[upstreams.NAME]`, registered as
/// `upstream:NAME` beside the local engines. A table whose key variable is
/// unset stops the start with its name (never the key).
fn upstreams(
    config: &Config,
    engines: &mut Engines,
) -> Result<Vec<Arc<maximin_upstream::Client>>, Failure> {
    let mut clients = Vec::new();
    for (name, cfg) in &config.upstreams {
        let p = maximin_upstream::build(name, cfg).map_err(Failure::Setup)?;
        let key = format!("upstream:{name}");
        engines.chat.insert(key.clone(), p.chat);
        if let Some(embed) = p.embed {
            engines.embed.insert(key.clone(), embed);
        }
        if let Some(speech) = p.speech {
            engines.speech.insert(key.clone(), speech);
        }
        if let Some(image) = p.image {
            engines.image.insert(key.clone(), image);
        }
        if let Some(video) = p.video {
            engines.video.insert(key.clone(), video);
        }
        if let Some(music) = p.music {
            engines.music.insert(key, music);
        }
        tracing::info!(upstream = %name, kind = cfg.kind.as_str(), region = cfg.region.as_deref().unwrap_or("-"), "upstream configured");
        clients.push(p.client);
    }
    Ok(clients)
}

/// One active health check per upstream that asks for it
/// (`health_check_path`): a failing probe takes it out of rotation until
/// one succeeds.
fn health_checks(
    platform: &Arc<Platform>,
    clients: Vec<Arc<maximin_upstream::Client>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut out = Vec::new();
    for client in clients {
        let Some(up) = platform.router.upstream(&client.name).cloned() else {
            continue;
        };
        if up.config.health_check_path.is_none() {
            continue;
        }
        out.push(tokio::spawn(async move {
            let every = Duration::from_secs_f64(up.config.health_check_interval_s);
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let ok = client.probe(up.config.timeout().min(every)).await.is_ok();
                up.set_healthy(ok);
            }
        }));
    }
    out
}

/// `maximin serve`: the engines, the first start (default models fetched
/// while the server answers, the owner's first key), the task runners, the
/// retention sweeper and the HTTP server until a shutdown signal.
pub(super) async fn serve(config: &Config) -> Result<(), Failure> {
    let models_dir = config.data_dir.join("models");
    let pulling = config.pull_on_start;
    let mut engines = engines(&config.engines, &models_dir, pulling);
    let clients = upstreams(config, &mut engines)?;
    let platform = open_platform(config, engines).await?;
    let health = health_checks(&platform, clients);
    // Marked before the socket opens, so `/readyz` is never ready before
    // the models are checked.
    let pulls = if pulling {
        first_start::mark_default_pulls(&platform)
    } else {
        Vec::new()
    };
    for m in platform.catalog.models() {
        if pulls.contains(&m.id) {
            continue;
        }
        if let Err(hint) = platform.installed.availability(m) {
            tracing::info!(model = %m.id, "model not available: {hint}");
        }
    }
    // What has outlived its retention goes before the first request.
    sweep_once(&platform).await;
    let sweeper = tokio::spawn(sweep_loop(platform.clone()));
    let stop_tasks = Arc::new(tokio::sync::Notify::new());
    let workers = config.tasks.workers.unwrap_or(1);
    let webhooks = Arc::new(maximin_media::webhook::Webhooks::new(
        &platform,
        config.media.allow_private_urls,
    ));
    // Deliveries that failed (this process's, or an earlier one's) are
    // retried from the store until taken or 24 hours old.
    let webhook_runner = tokio::spawn(webhooks.clone().run(stop_tasks.clone()));
    let mut handlers = maximin_speech::task_handlers(platform.clone());
    handlers.extend(maximin_core::export::task_handlers(platform.clone()));
    handlers.extend(maximin_media::task_handlers(
        platform.clone(),
        webhooks.clone(),
        config.media.clone(),
    ));
    let runners = platform.tasks.start(
        platform.files.clone(),
        handlers,
        workers,
        stop_tasks.clone(),
    );
    // Fine-tunes on runners of their own: `concurrent_jobs` at a time, so
    // a long training run never holds up the other tasks.
    let trainers = platform.tasks.start(
        platform.files.clone(),
        std::collections::HashMap::from([(
            maximin_core::finetune::jobs::TASK_KIND.to_owned(),
            Arc::new(maximin_core::finetune::jobs::FineTuneTasks {
                platform: platform.clone(),
                config: config.fine_tune.clone(),
            }) as Arc<dyn maximin_core::tasks::TaskHandler>,
        )]),
        if workers == 0 {
            0
        } else {
            config.fine_tune.concurrent_jobs
        },
        stop_tasks.clone(),
    );
    if workers == 0 {
        tracing::info!("task runners are off ([tasks] workers = 0): tasks queue until another process runs them");
    }
    let state = AppState::build(
        platform.clone(),
        config.public_url.as_deref().map(Arc::from),
        config.media.clone(),
        webhooks,
    )
    .with_fine_tune(config.fine_tune.clone());
    let hub = maximin_hub::router(
        platform.clone(),
        maximin_http::app(state.clone()),
        maximin_hub::HubConfig {
            secure_cookies: config
                .public_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://")),
        },
    );
    let app = Application::build(&config.listen, state)
        .await
        .map_err(|e| Failure::Setup(format!("cannot listen on {}: {e}", config.listen)))?
        .with_pages(hub);
    let addr = app
        .local_addr()
        .map_err(|e| Failure::Setup(e.to_string()))?;
    if let Some(src) = &config.source {
        tracing::info!(config = %src.display(), "configuration file read");
    }
    tracing::info!(data_dir = %config.data_dir.display(), store = compose::store_kind(config), "storage");
    // Before the line below: whoever waits for it finds the first key in place.
    first_start::first_key(&platform, config, &format!("http://{addr}")).await?;
    // A plain line on stdout, for people and for scripts that start us on port 0.
    println!("maximin listening on http://{addr}");
    let puller = tokio::spawn(first_start::pull_defaults(
        platform.clone(),
        models_dir,
        pulls,
    ));
    let result = app.run_until_stopped(shutdown_signal()).await;
    sweeper.abort();
    for h in health {
        h.abort();
    }
    puller.abort();
    // A task cut off here is claimed again after its lease (30 s) by the next start.
    stop_tasks.notify_waiters();
    for r in runners.into_iter().chain(trainers) {
        r.abort();
    }
    // A delivery cut off here is taken up again after its lease (60 s).
    webhook_runner.abort();
    platform.shutdown().await;
    result.map_err(|e| Failure::Setup(format!("server error: {e}")))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Enforces retention (seed 001, DESIGN.md §8) hourly; the first sweep
/// ran before the server opened (`sweep_once`).
async fn sweep_loop(platform: Arc<Platform>) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    tick.tick().await;
    loop {
        tick.tick().await;
        sweep_once(&platform).await;
    }
}

/// One retention sweep, logged as counts only.
async fn sweep_once(platform: &Platform) {
    let r = platform.sweep_retention(platform.clock.now()).await;
    if r.total() > 0 {
        tracing::info!(
            usage = r.usage,
            billing = r.billing,
            files = r.files,
            orphans = r.orphans,
            voices = r.voices,
            debug_logs = r.debug_logs,
            support = r.support,
            profiles = r.profiles,
            "retention sweep"
        );
    }
}
