//! The training loop: batches drawn in a seeded order per epoch, gradients
//! accumulated over a batch (the loss is the mean over the batch's learned
//! tokens), global-norm clipping at 1, AdamW with linear warm-up and cosine
//! decay, checkpoints that hold everything a resumed run needs (the factors,
//! the optimizer's moments and the step: the data order is a function of the
//! seed and the step), and the adapter written as llama.cpp loads it.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use candle_core::{Device, Tensor};
use maximin_core::{Error, Result};
use maximin_engine_llama::lora::{adapter_bytes, LoraPair};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::model::{ce, LoraModel, ATTENTION, MLP};

/// What a run is asked to do (resolved: no defaults left).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hyper {
    pub epochs: usize,
    pub learning_rate: f64,
    pub batch_size: usize,
    pub rank: usize,
    /// Factors on the MLP projections too, not only attention's.
    pub mlp: bool,
    pub seed: u64,
}

impl Hyper {
    pub fn alpha(&self) -> f32 {
        2.0 * self.rank as f32
    }
}

/// One example's tokens and which of them the loss is on.
#[derive(Debug, Clone)]
pub struct Example {
    pub tokens: Vec<u32>,
    pub learn: Vec<bool>,
}

/// What one optimizer step did.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// 1-based.
    pub step: usize,
    pub epoch: usize,
    /// Mean cross-entropy per learned token over the batch.
    pub loss: f64,
    pub learning_rate: f64,
    /// Tokens run forward and backward.
    pub tokens: usize,
    pub seconds: f64,
}

struct Moments {
    m: (Tensor, Tensor),
    v: (Tensor, Tensor),
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const ADAM_EPS: f64 = 1e-8;
const WEIGHT_DECAY: f64 = 0.01;
const CLIP: f64 = 1.0;
const MAGIC: &[u8; 8] = b"MXFTCK01";

/// A training run over a fixed set of examples.
pub struct Trainer {
    pub model: LoraModel,
    pub hyper: Hyper,
    examples: usize,
    step: usize,
    moments: Vec<Moments>,
}

#[derive(Serialize, Deserialize)]
struct CheckpointHead {
    step: usize,
    hyper: Hyper,
    examples: usize,
    targets: Vec<String>,
}

impl Trainer {
    /// A fresh run on the base model at `path` for `examples` examples.
    pub fn new(path: &Path, hyper: Hyper, examples: usize) -> Result<Self> {
        if examples == 0 || hyper.batch_size == 0 || hyper.epochs == 0 || hyper.rank == 0 {
            return Err(Error::internal(
                "a training run needs examples, epochs, a batch and a rank",
            ));
        }
        let mut suffixes: Vec<&str> = ATTENTION.to_vec();
        if hyper.mlp {
            suffixes.extend(MLP);
        }
        let model = LoraModel::load(path, &suffixes, hyper.rank, hyper.alpha(), hyper.seed)?;
        let moments = model
            .loras
            .iter()
            .map(|l| -> Result<Moments> {
                let z = |t: &Tensor| t.zeros_like().map_err(ce);
                Ok(Moments {
                    m: (z(l.a.as_tensor())?, z(l.b.as_tensor())?),
                    v: (z(l.a.as_tensor())?, z(l.b.as_tensor())?),
                })
            })
            .collect::<Result<_>>()?;
        Ok(Trainer {
            model,
            hyper,
            examples,
            step: 0,
            moments,
        })
    }

    pub fn steps_per_epoch(&self) -> usize {
        self.examples.div_ceil(self.hyper.batch_size)
    }

    pub fn total_steps(&self) -> usize {
        self.steps_per_epoch() * self.hyper.epochs
    }

    /// Steps done so far.
    pub fn step(&self) -> usize {
        self.step
    }

    pub fn done(&self) -> bool {
        self.step >= self.total_steps()
    }

    /// The examples of the next step (indices), and its epoch (1-based).
    pub fn next_batch(&self) -> (Vec<usize>, usize) {
        let spe = self.steps_per_epoch();
        let epoch = self.step / spe;
        let mut order: Vec<usize> = (0..self.examples).collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(
            self.hyper.seed ^ (epoch as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        );
        order.shuffle(&mut rng);
        let i = self.step % spe;
        let end = ((i + 1) * self.hyper.batch_size).min(self.examples);
        (order[i * self.hyper.batch_size..end].to_vec(), epoch + 1)
    }

    /// The learning rate at step `step` (0-based): linear warm-up over the
    /// first 10 % of steps (at least one), then cosine decay to a tenth.
    pub fn learning_rate(&self, step: usize) -> f64 {
        let total = self.total_steps().max(1);
        let warm = (total / 10).max(1);
        let base = self.hyper.learning_rate;
        if step < warm {
            return base * (step + 1) as f64 / warm as f64;
        }
        let progress = (step - warm) as f64 / (total - warm).max(1) as f64;
        let floor = base * 0.1;
        floor + (base - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos())
    }

    /// One optimizer step over `batch` (the examples [`Trainer::next_batch`]
    /// named); `None`, and no step taken, when `stop` says so between examples.
    pub fn train_step(
        &mut self,
        batch: &[&Example],
        epoch: usize,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<StepReport>> {
        let started = Instant::now();
        let learned: usize = batch
            .iter()
            .map(|e| (1..e.tokens.len()).filter(|&i| e.learn[i]).count())
            .sum();
        let mut grads = HashMap::new();
        let mut total = 0.0;
        let mut tokens = 0;
        if learned > 0 {
            let weight = 1.0 / learned as f64;
            for e in batch {
                if stop() {
                    return Ok(None);
                }
                let (sum, _) = self
                    .model
                    .loss(&e.tokens, &e.learn, Some(weight), &mut grads)
                    .map_err(ce)?;
                total += sum;
                tokens += e.tokens.len();
            }
            self.apply(&grads).map_err(ce)?;
        }
        let lr = self.learning_rate(self.step);
        self.step += 1;
        Ok(Some(StepReport {
            step: self.step,
            epoch,
            loss: total / learned.max(1) as f64,
            learning_rate: lr,
            tokens,
            seconds: started.elapsed().as_secs_f64(),
        }))
    }

    fn apply(&mut self, grads: &HashMap<usize, (Tensor, Tensor)>) -> candle_core::Result<()> {
        let mut norm2 = 0.0;
        for (ga, gb) in grads.values() {
            norm2 += ga.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
            norm2 += gb.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        }
        let norm = norm2.sqrt();
        let clip = if norm > CLIP { CLIP / norm } else { 1.0 };
        let lr = self.learning_rate(self.step);
        let t = (self.step + 1) as i32;
        let (c1, c2) = (1.0 - BETA1.powi(t), 1.0 - BETA2.powi(t));
        for (i, lora) in self.model.loras.iter().enumerate() {
            let Some((ga, gb)) = grads.get(&i) else {
                continue;
            };
            let mo = &mut self.moments[i];
            for (var, g, m, v) in [
                (&lora.a, ga, &mut mo.m.0, &mut mo.v.0),
                (&lora.b, gb, &mut mo.m.1, &mut mo.v.1),
            ] {
                let g = (g * clip)?;
                *m = ((&*m * BETA1)? + (&g * (1.0 - BETA1))?)?;
                *v = ((&*v * BETA2)? + (g.sqr()? * (1.0 - BETA2))?)?;
                let update = ((&*m / c1)? / ((&*v / c2)?.sqrt()? + ADAM_EPS)?)?;
                let w = var.as_tensor();
                let next = ((w * (1.0 - lr * WEIGHT_DECAY))? - (update * lr)?)?;
                var.set(&next)?;
            }
        }
        Ok(())
    }

    /// Mean loss per learned token over `examples`, without training.
    pub fn evaluate(&self, examples: &[Example]) -> Result<f64> {
        let mut sum = 0.0;
        let mut n = 0;
        let mut none = HashMap::new();
        for e in examples {
            let (s, k) = self
                .model
                .loss(&e.tokens, &e.learn, None, &mut none)
                .map_err(ce)?;
            sum += s;
            n += k;
        }
        Ok(sum / n.max(1) as f64)
    }

    /// Everything a resumed run needs, as bytes.
    pub fn checkpoint(&self) -> Result<Vec<u8>> {
        let head = CheckpointHead {
            step: self.step,
            hyper: self.hyper.clone(),
            examples: self.examples,
            targets: self.model.loras.iter().map(|l| l.target.clone()).collect(),
        };
        let head = serde_json::to_vec(&head).map_err(Error::internal)?;
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(head.len() as u64).to_le_bytes());
        out.extend_from_slice(&head);
        for (l, mo) in self.model.loras.iter().zip(&self.moments) {
            for t in [
                l.a.as_tensor(),
                l.b.as_tensor(),
                &mo.m.0,
                &mo.m.1,
                &mo.v.0,
                &mo.v.1,
            ] {
                for x in t
                    .flatten_all()
                    .and_then(|t| t.to_vec1::<f32>())
                    .map_err(ce)?
                {
                    out.extend_from_slice(&x.to_le_bytes());
                }
            }
        }
        Ok(out)
    }

    /// Continues from a checkpoint of the same run.
    pub fn resume(&mut self, bytes: &[u8]) -> Result<()> {
        let bad = |why: &str| Error::internal(format!("checkpoint: {why}"));
        if bytes.len() < 16 || &bytes[..8] != MAGIC {
            return Err(bad("not a checkpoint"));
        }
        let n = u64::from_le_bytes(bytes[8..16].try_into().map_err(|_| bad("short"))?) as usize;
        let head: CheckpointHead =
            serde_json::from_slice(bytes.get(16..16 + n).ok_or_else(|| bad("short"))?)
                .map_err(|e| bad(&e.to_string()))?;
        let targets: Vec<String> = self.model.loras.iter().map(|l| l.target.clone()).collect();
        if head.hyper != self.hyper || head.examples != self.examples || head.targets != targets {
            return Err(bad("it belongs to another run"));
        }
        let mut at = 16 + n;
        let mut take = |like: &Tensor| -> Result<Tensor> {
            let len = like.elem_count();
            let raw = bytes.get(at..at + 4 * len).ok_or_else(|| bad("short"))?;
            at += 4 * len;
            let v: Vec<f32> = raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            Tensor::from_vec(v, like.shape(), &Device::Cpu).map_err(ce)
        };
        for (l, mo) in self.model.loras.iter().zip(self.moments.iter_mut()) {
            let a = take(l.a.as_tensor())?;
            let b = take(l.b.as_tensor())?;
            l.a.set(&a).map_err(ce)?;
            l.b.set(&b).map_err(ce)?;
            mo.m = (take(&mo.m.0)?, take(&mo.m.1)?);
            mo.v = (take(&mo.v.0)?, take(&mo.v.1)?);
        }
        self.step = head.step;
        Ok(())
    }

    /// The adapter as a GGUF file's bytes.
    pub fn adapter(&self) -> Result<Vec<u8>> {
        let pairs = self
            .model
            .loras
            .iter()
            .map(|l| -> Result<LoraPair> {
                let (rank, n_in) = l.a.as_tensor().dims2().map_err(ce)?;
                let (n_out, _) = l.b.as_tensor().dims2().map_err(ce)?;
                let flat =
                    |t: &Tensor| t.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(ce);
                Ok(LoraPair {
                    target: l.target.clone(),
                    rank,
                    n_in,
                    n_out,
                    a: flat(l.a.as_tensor())?,
                    b: flat(l.b.as_tensor())?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        adapter_bytes(&self.model.architecture, self.model.alpha, &pairs).map_err(Error::internal)
    }
}
