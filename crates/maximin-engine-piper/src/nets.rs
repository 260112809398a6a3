//! A voice's sessions in ONNX Runtime and the runs on them: the graphs cut
//! and made ready for one width, the shared encoder weights, loading the
//! wide and the single-threaded nets, encoding, decoding a stretch of
//! frames, and handing parts to the single-threaded nets side by side.

use std::sync::{Arc, Mutex};

use maximin_core::{Error, Result};
use ort::environment::Environment;
use ort::session::Session;
use ort::value::Tensor;

use crate::{arena, onnx, Ready, Voice, Weights, SHARED_MIN_VALUES};

/// A voice's model in ONNX Runtime: whole, or cut before its decoder.
pub(crate) struct Net {
    /// The encoder when cut (ids to frames), else the whole voice.
    pub(crate) enc: Session,
    pub(crate) dec: Option<Decoder>,
}

/// A voice's decoder: its input (the tensor of frames) and how many frames
/// of context either side make a stretch decode as in the whole.
pub(crate) struct Decoder {
    pub(crate) session: Session,
    pub(crate) frames: String,
    pub(crate) context: usize,
}

/// A voice's graphs as ONNX bytes, made ready for sessions of one width.
pub(crate) struct Graphs {
    /// The encoder, or the whole voice when it cannot be cut.
    pub(crate) enc: Vec<u8>,
    /// The encoder's weights, shared with the voice's other sessions (none
    /// for a graph of its own: a whole voice with 2-D convolutions).
    pub(crate) enc_weights: Option<Weights>,
    /// The decoder, its input's name and context.
    pub(crate) dec: Option<(Vec<u8>, String, usize)>,
}

pub(crate) type Shared = Arc<Mutex<Net>>;

/// A stretch of frames the encoder gave: `[channels, len]`, row by row.
pub(crate) struct Frames {
    pub(crate) data: Vec<f32>,
    pub(crate) channels: usize,
    pub(crate) len: usize,
}

/// Frames decoded in the first piece of a streamed sentence: about 0.37 s
/// at Piper's 86 frames a second, quick to decode, long enough that the
/// next piece is ready before it has played.
pub(crate) const FIRST_FRAMES: usize = 32;
/// The longest stretch decoded in one part: a long sentence is decoded in
/// parts of at most ~3 s, handed out in order, so the first are sent early.
pub(crate) const MAX_PART_FRAMES: usize = 256;

/// Reads and cuts the voice where it can; for single-threaded sessions
/// with 2-D convolutions ([`onnx::conv2d`]) in the decoder. Every session's
/// encoder is the same 1-D graph, reading one copy of the weights (nearly
/// all of a voice's: 55 of Joe's 63 MB): a 2-D copy per single-threaded
/// session would be re-laid out by ONNX Runtime for each, and on one thread
/// the encoder is no faster in 2-D (Joe's, 243 ids: 100 ms in 1-D, 111 ms
/// in 2-D); the 2-D gain is the decoder's.
pub(crate) fn graphs(voice: &Voice, one_thread: bool) -> Result<Graphs> {
    let bytes = std::fs::read(&voice.model)
        .map_err(|e| Error::internal(format!("reading {}: {e}", voice.model.display())))?;
    let narrow = |graph: Vec<u8>| {
        if !one_thread {
            return graph;
        }
        onnx::conv2d(&graph).unwrap_or_else(|e| {
            tracing::warn!(voice = %voice.info.id, error = %e, "kept 1-D convolutions");
            graph
        })
    };
    let split = onnx::split(&bytes).unwrap_or_else(|e| {
        tracing::warn!(voice = %voice.info.id, error = %e, "the voice cannot be cut; it runs whole");
        None
    });
    Ok(match split {
        Some(s) => Graphs {
            enc_weights: Some(shared_weights(voice, &s.encoder)?),
            enc: s.encoder,
            dec: Some((narrow(s.decoder), s.frames, s.context)),
        },
        None if one_thread => Graphs {
            enc: narrow(bytes),
            enc_weights: None,
            dec: None,
        },
        None => Graphs {
            enc_weights: Some(shared_weights(voice, &bytes)?),
            enc: bytes,
            dec: None,
        },
    })
}

/// The voice's encoder weights as tensors, made once (from `graph`, the
/// encoder every session runs).
pub(crate) fn shared_weights(voice: &Voice, graph: &[u8]) -> Result<Weights> {
    let mut slot = voice
        .weights
        .lock()
        .map_err(|_| Error::internal("piper weights lock poisoned"))?;
    if let Some(w) = slot.as_ref() {
        return Ok(w.clone());
    }
    let fail = |e: &dyn std::fmt::Display| {
        Error::internal(format!(
            "reading the weights of {}: {e}",
            voice.model.display()
        ))
    };
    let mut out = Vec::new();
    for w in onnx::weights(graph, SHARED_MIN_VALUES).map_err(|e| fail(&e))? {
        let t = Tensor::from_array((w.dims, w.values)).map_err(|e| fail(&e))?;
        out.push((w.name, Arc::new(t.into_dyn())));
    }
    let w = Arc::new(out);
    *slot = Some(w.clone());
    Ok(w)
}

/// Sessions with `threads` intra-op threads on `graphs`.
pub(crate) fn load_net(
    env: &Environment,
    voice: &Voice,
    graphs: &Graphs,
    threads: usize,
) -> Result<Net> {
    let started = std::time::Instant::now();
    let session = |graph: &[u8], weights: Option<&Weights>| -> Result<Session> {
        let fail = |e: &dyn std::fmt::Display| {
            Error::internal(format!("loading {}: {e}", voice.model.display()))
        };
        let mut builder = Session::builder(env).map_err(|e| fail(&e))?;
        for (name, value) in weights.map(|w| w.as_slice()).unwrap_or_default() {
            builder = builder
                .with_initializer(name, value.clone())
                .map_err(|e| fail(&e))?;
        }
        // Intermediate tensors in the process's one arena (when it could be
        // made), not one per session: each session's would keep its own
        // largest run's worth.
        if arena::shared() {
            builder = builder.with_env_allocators().map_err(|e| fail(&e))?;
        }
        let builder = builder.with_intra_threads(threads).map_err(|e| fail(&e))?;
        // The pool's threads spin between a run's nodes (thousands of small
        // ones in the encoder: waking a sleeping thread for each costs ~10 %)
        // but stop when the run ends: spinning on, they took the cores from
        // the sessions that run next (a decoder after its encoder, the
        // single-threaded parts after the first piece) and made those ~40 %
        // slower.
        let builder = builder.with_intra_op_spinning(true).map_err(|e| fail(&e))?;
        let mut builder = builder
            .with_config_entry("session.force_spinning_stop", "1")
            .map_err(|e| fail(&e))?;
        builder.commit_from_memory(graph).map_err(|e| fail(&e))
    };
    let net = Net {
        enc: session(&graphs.enc, graphs.enc_weights.as_ref())?,
        dec: match &graphs.dec {
            Some((graph, frames, context)) => Some(Decoder {
                session: session(graph, None)?,
                frames: frames.clone(),
                context: *context,
            }),
            None => None,
        },
    };
    tracing::info!(
        voice = %voice.info.id,
        threads,
        cut = net.dec.is_some(),
        ms = started.elapsed().as_millis() as u64,
        "Piper voice loaded"
    );
    Ok(net)
}

pub(crate) fn wide_net(env: &Environment, voice: &Voice, threads: usize) -> Result<Shared> {
    let mut slot = voice
        .wide
        .lock()
        .map_err(|_| Error::internal("piper session lock poisoned"))?;
    if let Some(s) = slot.as_ref() {
        return Ok(s.clone());
    }
    let graphs = graphs(voice, threads == 1)?;
    let s = Arc::new(Mutex::new(load_net(env, voice, &graphs, threads)?));
    drop(graphs);
    arena::trim();
    *slot = Some(s.clone());
    Ok(s)
}

pub(crate) fn narrow_nets(env: &Environment, voice: &Voice, n: usize) -> Result<Vec<Shared>> {
    let mut pool = voice
        .narrow
        .lock()
        .map_err(|_| Error::internal("piper session lock poisoned"))?;
    if pool.len() < n {
        let graphs = graphs(voice, true)?;
        while pool.len() < n {
            pool.push(Arc::new(Mutex::new(load_net(env, voice, &graphs, 1)?)));
        }
        drop(graphs);
        arena::trim();
    }
    Ok(pool[..n].to_vec())
}

pub(crate) fn lock(net: &Mutex<Net>) -> Result<std::sync::MutexGuard<'_, Net>> {
    net.lock()
        .map_err(|_| Error::internal("piper session poisoned"))
}

pub(crate) fn inference(e: ort::Error) -> Error {
    Error::internal(format!("piper inference: {e}"))
}

/// Runs the encoder (or the whole voice) on one text: its first output's
/// shape and values.
pub(crate) fn encode(session: &mut Session, ready: &Ready) -> Result<(Vec<usize>, Vec<f32>)> {
    encode_with(session, ready, None)
}

/// [`encode`], with run options.
pub(crate) fn encode_with(
    session: &mut Session,
    ready: &Ready,
    opts: Option<&ort::session::RunOptions>,
) -> Result<(Vec<usize>, Vec<f32>)> {
    let n = ready.ids.len();
    let input = Tensor::from_array(([1usize, n], ready.ids.clone())).map_err(inference)?;
    let lengths = Tensor::from_array(([1usize], vec![n as i64])).map_err(inference)?;
    let scales = Tensor::from_array(([3usize], ready.scales.clone())).map_err(inference)?;
    let mut inputs = vec![
        ("input", ort::session::SessionInputValue::from(input)),
        ("input_lengths", lengths.into()),
        ("scales", scales.into()),
    ];
    if ready.multi {
        let sid = Tensor::from_array(([1usize], vec![0i64])).map_err(inference)?;
        inputs.push(("sid", sid.into()));
    }
    let outputs = match opts {
        Some(o) => session.run_with_options(inputs, o),
        None => session.run(inputs),
    }
    .map_err(inference)?;
    let (_, value) = outputs
        .into_iter()
        .next()
        .ok_or_else(|| Error::internal("piper model gave no output"))?;
    let (shape, data) = value.try_extract_tensor::<f32>().map_err(inference)?;
    let shape = shape.iter().map(|d| (*d).max(0) as usize).collect();
    Ok((shape, data.to_vec()))
}

/// The frames of one text (cut voices).
pub(crate) fn frames_of(net: &mut Net, ready: &Ready) -> Result<Frames> {
    let (shape, data) = encode(&mut net.enc, ready)?;
    let [1, channels, len] = shape[..] else {
        return Err(Error::internal(format!(
            "piper encoder gave frames of shape {shape:?}"
        )));
    };
    Ok(Frames {
        data,
        channels,
        len,
    })
}

/// Samples of the frames `range`, decoded with up to the decoder's context
/// of frames either side so that they come out as from the whole sequence.
pub(crate) fn decode(net: &mut Net, z: &Frames, range: std::ops::Range<usize>) -> Result<Vec<f32>> {
    let dec = net
        .dec
        .as_mut()
        .ok_or_else(|| Error::internal("piper voice has no decoder"))?;
    let from = range.start.saturating_sub(dec.context);
    let to = (range.end + dec.context).min(z.len);
    let n = to - from;
    let mut x = Vec::with_capacity(z.channels * n);
    for row in z.data.chunks_exact(z.len) {
        x.extend_from_slice(&row[from..to]);
    }
    let input = Tensor::from_array(([1usize, z.channels, n], x)).map_err(inference)?;
    let outputs = dec
        .session
        .run(vec![(
            dec.frames.as_str(),
            ort::session::SessionInputValue::from(input),
        )])
        .map_err(inference)?;
    let (_, value) = outputs
        .into_iter()
        .next()
        .ok_or_else(|| Error::internal("piper decoder gave no output"))?;
    let (_, audio) = value.try_extract_tensor::<f32>().map_err(inference)?;
    if n == 0 || audio.len() % n != 0 {
        return Err(Error::internal(format!(
            "piper decoder gave {} samples for {n} frames",
            audio.len()
        )));
    }
    let hop = audio.len() / n;
    Ok(audio[(range.start - from) * hop..(range.end - from) * hop].to_vec())
}

/// One text start to end on one net.
pub(crate) fn speak(net: &mut Net, ready: &Ready) -> Result<Vec<f32>> {
    if net.dec.is_none() {
        return encode(&mut net.enc, ready).map(|(_, samples)| samples);
    }
    let z = frames_of(net, ready)?;
    decode(net, &z, 0..z.len)
}

/// `range` in `n` near-equal parts, none longer than [`MAX_PART_FRAMES`].
pub(crate) fn parts(range: std::ops::Range<usize>, n: usize) -> Vec<std::ops::Range<usize>> {
    let len = range.len();
    let n = n.max(len.div_ceil(MAX_PART_FRAMES)).clamp(1, len.max(1));
    (0..n)
        .map(|i| range.start + len * i / n..range.start + len * (i + 1) / n)
        .collect()
}

pub(crate) type Pending<T> = tokio::sync::oneshot::Receiver<Result<T>>;

/// Runs `jobs` on single-threaded nets: each takes the next waiting job as
/// soon as it is free, so no core waits while another has work. Results
/// come back in the jobs' order; a job nobody waits for any more is skipped.
pub(crate) fn side_by_side<J, T>(
    nets: Vec<Shared>,
    jobs: Vec<J>,
    run: impl Fn(&mut Net, J) -> Result<T> + Send + Sync + 'static,
) -> Vec<Pending<T>>
where
    J: Send + 'static,
    T: Send + 'static,
{
    let (txs, rxs): (Vec<_>, Vec<_>) = jobs.iter().map(|_| tokio::sync::oneshot::channel()).unzip();
    let workers = nets.len().min(jobs.len());
    let queue = Arc::new(Mutex::new(
        jobs.into_iter()
            .zip(txs)
            .collect::<std::collections::VecDeque<_>>(),
    ));
    let run = Arc::new(run);
    for net in nets.into_iter().take(workers) {
        let (queue, run) = (queue.clone(), run.clone());
        tokio::task::spawn_blocking(move || loop {
            let Some((job, tx)) = queue.lock().ok().and_then(|mut q| q.pop_front()) else {
                return;
            };
            if tx.is_closed() {
                continue;
            }
            let _ = tx.send(lock(&net).and_then(|mut n| run(&mut n, job)));
        });
    }
    rxs
}

pub(crate) async fn outcome<T>(pending: Pending<T>) -> Result<T> {
    pending
        .await
        .unwrap_or_else(|_| Err(Error::internal("a piper run was lost")))
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("piper task: {e}")))?
}
