//! Speech going idle: once the last request has ended and no other has
//! begun for a while, the shared arena and the C heap give back what the
//! busiest moment took.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use maximin_core::Result;

use crate::nets::{encode_with, inference, lock};
use crate::voices::phoneme_ids;
use crate::{arena, Ready, Voice};

/// Requests being spoken, how many have begun, and how many times speech
/// went idle long enough for the arena to shrink.
#[derive(Default)]
pub(crate) struct Activity {
    pub(crate) inflight: AtomicUsize,
    pub(crate) begun: AtomicU64,
    pub(crate) shrunk: AtomicU64,
}

/// How long speech must have been idle before the shared arena shrinks.
pub(crate) const IDLE_SHRINK: std::time::Duration = std::time::Duration::from_secs(1);

/// A request being spoken. Once the last one has ended and no other has
/// begun for [`IDLE_SHRINK`], the shared arena's free regions go back to the
/// system: it keeps what the busiest moment needed (a few decodes side by
/// side: 100 MB and more), which an idle server would otherwise hold for
/// good. Not at once: the next request would then fault its memory in
/// again, which made back-to-back sentences ~15 % slower.
pub(crate) struct Busy {
    pub(crate) activity: Arc<Activity>,
    pub(crate) voice: Arc<Voice>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        let a = &self.activity;
        if a.inflight.fetch_sub(1, Ordering::AcqRel) != 1 || !arena::shared() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (activity, voice) = (a.clone(), self.voice.clone());
        let begun = activity.begun.load(Ordering::Acquire);
        rt.spawn(async move {
            tokio::time::sleep(IDLE_SHRINK).await;
            if activity.inflight.load(Ordering::Acquire) != 0
                || activity.begun.load(Ordering::Acquire) != begun
            {
                return;
            }
            match tokio::task::spawn_blocking(move || shrink(&voice)).await {
                Ok(Ok(())) => {
                    activity.shrunk.fetch_add(1, Ordering::AcqRel);
                }
                Ok(Err(e)) => tracing::debug!(error = %e, "the speech arena was not shrunk"),
                Err(_) => {}
            }
        });
    }
}

/// Shrinks the shared arena: ONNX Runtime does it at the end of a run that
/// asks for it, so one of the voice's encoders runs on the shortest input
/// (its start and end marks), a millisecond's work; then trims the C heap.
pub(crate) fn shrink(voice: &Voice) -> Result<()> {
    let loaded = voice
        .wide
        .lock()
        .ok()
        .and_then(|w| w.clone())
        .or_else(|| voice.narrow.lock().ok().and_then(|n| n.first().cloned()));
    let Some(net) = loaded else {
        return Ok(());
    };
    let inf = &voice.config.inference;
    let ready = Ready {
        ids: phoneme_ids(&[], &voice.config.phoneme_id_map),
        scales: vec![inf.noise_scale, inf.length_scale, inf.noise_w],
        multi: voice.config.num_speakers > 1,
        sample_rate: voice.config.audio.sample_rate,
    };
    let opts = arena::shrinking().map_err(inference)?;
    let mut net = lock(&net)?;
    let ran = encode_with(&mut net.enc, &ready, Some(&opts)).map(drop);
    drop(net);
    // What ONNX Runtime freed on the C heap meanwhile (a first run's
    // planning, a load's leftovers) goes back too.
    arena::trim();
    ran
}
