//! Samplers, written here rather than taken from candle because candle's draw
//! their noise from the CPU device's unseedable generator: the same seed must
//! give the same image. The arithmetic follows diffusers' schedulers of the
//! same names (training schedule, timestep spacing, prediction type).
//!
//! `scheduler/scheduler_config.json`'s `_class_name` picks the sampler:
//! `EulerDiscreteScheduler` and `EulerAncestralDiscreteScheduler` as such,
//! `DDIMScheduler` as such (eta 0); the other multistep samplers of the
//! SD repositories (PNDM, DDPM, LMS, DPM-Solver, UniPC, Heun, LCM) run as DDIM
//! over the same training schedule, which these models are trained for.

use std::path::Path;

use crate::config::{bad, Cfg, Json};
use crate::DiffusionError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sampler {
    Euler,
    EulerAncestral,
    Ddim,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prediction {
    Epsilon,
    /// `v_prediction`
    V,
    Sample,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Spacing {
    Leading,
    Trailing,
    Linspace,
}

#[derive(Debug, Clone)]
pub(crate) struct SchedulerConfig {
    pub(crate) sampler: Sampler,
    pub(crate) class_name: String,
    pub(crate) prediction: Prediction,
    pub(crate) spacing: Spacing,
    pub(crate) steps_offset: usize,
    pub(crate) set_alpha_to_one: bool,
    pub(crate) clip_sample: Option<f64>,
    /// `alphas_cumprod` of the training schedule, one per training timestep.
    pub(crate) alphas_cumprod: Vec<f64>,
}

pub(crate) fn scheduler_config(path: &Path, map: &Json) -> Result<SchedulerConfig, DiffusionError> {
    let c = Cfg::new(path, map);
    let class_name = c
        .str_opt("_class_name")?
        .unwrap_or("DDIMScheduler")
        .to_string();
    let sampler = match class_name.as_str() {
        "EulerDiscreteScheduler" => Sampler::Euler,
        "EulerAncestralDiscreteScheduler" => Sampler::EulerAncestral,
        "DDIMScheduler"
        | "PNDMScheduler"
        | "DDPMScheduler"
        | "LMSDiscreteScheduler"
        | "DPMSolverMultistepScheduler"
        | "DPMSolverSinglestepScheduler"
        | "UniPCMultistepScheduler"
        | "HeunDiscreteScheduler"
        | "LCMScheduler"
        | "KDPM2DiscreteScheduler"
        | "KDPM2AncestralDiscreteScheduler"
        | "DEISMultistepScheduler" => Sampler::Ddim,
        other => {
            return Err(DiffusionError::Unsupported(format!(
                "{}: scheduler `{other}`",
                path.display()
            )))
        }
    };
    let prediction = match c.str_opt("prediction_type")?.unwrap_or("epsilon") {
        "epsilon" => Prediction::Epsilon,
        "v_prediction" => Prediction::V,
        "sample" => Prediction::Sample,
        other => return Err(bad(path, &format!("unknown prediction_type `{other}`"))),
    };
    let spacing = match c.str_opt("timestep_spacing")?.unwrap_or("leading") {
        "leading" => Spacing::Leading,
        "trailing" => Spacing::Trailing,
        "linspace" => Spacing::Linspace,
        other => return Err(bad(path, &format!("unknown timestep_spacing `{other}`"))),
    };
    let train = c.usize_or("num_train_timesteps", 1000)?;
    if !(2..=100_000).contains(&train) {
        return Err(bad(path, "num_train_timesteps out of range"));
    }
    let beta_start = c.f64_or("beta_start", 0.00085)?;
    let beta_end = c.f64_or("beta_end", 0.012)?;
    let betas: Vec<f64> = match c.str_opt("beta_schedule")?.unwrap_or("scaled_linear") {
        "linear" => linspace(beta_start, beta_end, train),
        "scaled_linear" => linspace(beta_start.sqrt(), beta_end.sqrt(), train)
            .into_iter()
            .map(|b| b * b)
            .collect(),
        "squaredcos_cap_v2" => (0..train)
            .map(|i| {
                let f = |t: f64| {
                    ((t + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2)
                        .cos()
                        .powi(2)
                };
                let t1 = i as f64 / train as f64;
                let t2 = (i + 1) as f64 / train as f64;
                (1.0 - f(t2) / f(t1)).min(0.999)
            })
            .collect(),
        other => return Err(bad(path, &format!("unknown beta_schedule `{other}`"))),
    };
    if betas.iter().any(|b| !(*b > 0.0 && *b < 1.0)) {
        return Err(bad(path, "betas must lie in (0, 1)"));
    }
    let mut alphas_cumprod = Vec::with_capacity(train);
    let mut acc = 1.0;
    for b in betas {
        acc *= 1.0 - b;
        alphas_cumprod.push(acc);
    }
    let clip_sample = if c.bool_or("clip_sample", false)? {
        Some(c.f64_or("clip_sample_range", 1.0)?)
    } else {
        None
    };
    Ok(SchedulerConfig {
        sampler,
        class_name,
        prediction,
        spacing,
        steps_offset: c.usize_or("steps_offset", 0)?,
        set_alpha_to_one: c.bool_or("set_alpha_to_one", true)?,
        clip_sample,
        alphas_cumprod,
    })
}

fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![a];
    }
    (0..n)
        .map(|i| a + (b - a) * i as f64 / (n - 1) as f64)
        .collect()
}

impl SchedulerConfig {
    fn train(&self) -> usize {
        self.alphas_cumprod.len()
    }

    /// The timesteps of an `n`-step schedule, from the noisiest.
    pub(crate) fn timesteps(&self, n: usize) -> Vec<f64> {
        let train = self.train();
        let n = n.clamp(1, train);
        // One step from anywhere but the end of the training schedule
        // cannot produce an image: a one-step schedule always starts there.
        let spacing = if n == 1 {
            Spacing::Trailing
        } else {
            self.spacing
        };
        let mut ts: Vec<f64> = match spacing {
            Spacing::Leading => {
                let ratio = train / n;
                (0..n)
                    .rev()
                    .map(|i| ((i * ratio + self.steps_offset).min(train - 1)) as f64)
                    .collect()
            }
            Spacing::Trailing => {
                let ratio = train as f64 / n as f64;
                (0..n)
                    .map(|i| ((train as f64 - i as f64 * ratio).round() - 1.0).max(0.0))
                    .collect()
            }
            Spacing::Linspace => linspace(0.0, (train - 1) as f64, n)
                .into_iter()
                .rev()
                .collect(),
        };
        // DDIM and the DDPM-style samplers run on integer timesteps.
        if self.sampler == Sampler::Ddim {
            for t in &mut ts {
                *t = t.round();
            }
        }
        ts
    }

    /// `alphas_cumprod` at a (possibly fractional) timestep, interpolated
    /// linearly in sigma as diffusers' Euler samplers do.
    fn sigma_at(&self, t: f64) -> f64 {
        let sigma = |i: usize| {
            let a = self.alphas_cumprod[i];
            ((1.0 - a) / a).sqrt()
        };
        let last = self.train() - 1;
        let t = t.clamp(0.0, last as f64);
        let lo = t.floor() as usize;
        let hi = (lo + 1).min(last);
        let w = t - lo as f64;
        sigma(lo) * (1.0 - w) + sigma(hi) * w
    }

    fn alpha_at(&self, t: f64) -> f64 {
        let i = (t.round().max(0.0) as usize).min(self.train() - 1);
        self.alphas_cumprod[i]
    }

    fn final_alpha(&self) -> f64 {
        if self.set_alpha_to_one {
            1.0
        } else {
            self.alphas_cumprod[0]
        }
    }

    /// A run over `timesteps` (a tail of a schedule for image-to-image).
    pub(crate) fn run(&self, timesteps: Vec<f64>, full_schedule_first: f64) -> Run {
        let sigmas = match self.sampler {
            Sampler::Ddim => Vec::new(),
            _ => {
                let mut s: Vec<f64> = timesteps.iter().map(|&t| self.sigma_at(t)).collect();
                s.push(0.0);
                s
            }
        };
        // diffusers' Euler samplers start from noise of std max(sigma) for
        // trailing/linspace spacing and sqrt(max^2 + 1) for leading.
        let init_sigma = match self.sampler {
            Sampler::Ddim => 1.0,
            _ => {
                let max = self.sigma_at(full_schedule_first);
                if self.spacing == Spacing::Leading && timesteps.len() > 1 {
                    (max * max + 1.0).sqrt()
                } else {
                    max
                }
            }
        };
        Run {
            cfg: self.clone(),
            timesteps,
            sigmas,
            init_sigma,
        }
    }
}

/// One generation's walk down a schedule. The tensors are handled as flat
/// `f32` vectors of the latents: the sampler's arithmetic is element-wise.
pub(crate) struct Run {
    cfg: SchedulerConfig,
    pub(crate) timesteps: Vec<f64>,
    sigmas: Vec<f64>,
    pub(crate) init_sigma: f64,
}

impl Run {
    /// Scale applied to the latents before they enter the model at step `i`.
    pub(crate) fn input_scale(&self, i: usize) -> f64 {
        match self.cfg.sampler {
            Sampler::Ddim => 1.0,
            _ => 1.0 / (self.sigmas[i] * self.sigmas[i] + 1.0).sqrt(),
        }
    }

    /// Clean latents `x0` noised to the level of step `i` (image-to-image).
    pub(crate) fn add_noise(&self, x0: &[f32], noise: &[f32], i: usize) -> Vec<f32> {
        match self.cfg.sampler {
            Sampler::Ddim => {
                let a = self.cfg.alpha_at(self.timesteps[i]);
                let (sa, sb) = (a.sqrt() as f32, (1.0 - a).sqrt() as f32);
                x0.iter()
                    .zip(noise)
                    .map(|(&x, &n)| sa * x + sb * n)
                    .collect()
            }
            _ => {
                let s = self.sigmas[i] as f32;
                x0.iter().zip(noise).map(|(&x, &n)| x + s * n).collect()
            }
        }
    }

    /// Pure-noise latents for text-to-image.
    pub(crate) fn initial(&self, noise: &[f32]) -> Vec<f32> {
        let s = self.init_sigma as f32;
        noise.iter().map(|&n| n * s).collect()
    }

    /// One step: from the model's output at step `i` to the latents of step
    /// `i + 1`. `noise` (same length) is used only by ancestral sampling.
    pub(crate) fn step(
        &self,
        i: usize,
        x: &[f32],
        out: &[f32],
        noise: &mut dyn FnMut() -> Vec<f32>,
    ) -> Vec<f32> {
        match self.cfg.sampler {
            Sampler::Ddim => self.ddim_step(i, x, out),
            Sampler::Euler | Sampler::EulerAncestral => {
                let sigma = self.sigmas[i];
                let next = self.sigmas[i + 1];
                let x0 = self.x0_from_sigma(sigma, x, out);
                let (down, up) = if self.cfg.sampler == Sampler::EulerAncestral && next > 0.0 {
                    let up = (next * next * (sigma * sigma - next * next) / (sigma * sigma))
                        .max(0.0)
                        .sqrt();
                    ((next * next - up * up).max(0.0).sqrt(), up)
                } else {
                    (next, 0.0)
                };
                // x + d * (down - sigma) with d = (x - x0) / sigma.
                let k = ((down - sigma) / sigma) as f32;
                let mut res: Vec<f32> = x
                    .iter()
                    .zip(&x0)
                    .map(|(&xv, &x0v)| xv + (xv - x0v) * k)
                    .collect();
                if up > 0.0 {
                    let n = noise();
                    let up = up as f32;
                    for (r, nv) in res.iter_mut().zip(n) {
                        *r += nv * up;
                    }
                }
                res
            }
        }
    }

    fn x0_from_sigma(&self, sigma: f64, x: &[f32], out: &[f32]) -> Vec<f32> {
        match self.cfg.prediction {
            Prediction::Epsilon => {
                let s = sigma as f32;
                x.iter().zip(out).map(|(&xv, &o)| xv - s * o).collect()
            }
            Prediction::V => {
                let c_out = (-sigma / (sigma * sigma + 1.0).sqrt()) as f32;
                let c_skip = (1.0 / (sigma * sigma + 1.0)) as f32;
                x.iter()
                    .zip(out)
                    .map(|(&xv, &o)| o * c_out + xv * c_skip)
                    .collect()
            }
            Prediction::Sample => out.to_vec(),
        }
    }

    fn ddim_step(&self, i: usize, x: &[f32], out: &[f32]) -> Vec<f32> {
        let a = self.cfg.alpha_at(self.timesteps[i]);
        let a_prev = match self.timesteps.get(i + 1) {
            Some(&t) => self.cfg.alpha_at(t),
            None => self.cfg.final_alpha(),
        };
        let (sa, sb) = (a.sqrt() as f32, (1.0 - a).sqrt() as f32);
        let (mut x0, eps): (Vec<f32>, Vec<f32>) = match self.cfg.prediction {
            Prediction::Epsilon => (
                x.iter()
                    .zip(out)
                    .map(|(&xv, &e)| (xv - sb * e) / sa)
                    .collect(),
                out.to_vec(),
            ),
            Prediction::V => (
                x.iter()
                    .zip(out)
                    .map(|(&xv, &v)| sa * xv - sb * v)
                    .collect(),
                x.iter()
                    .zip(out)
                    .map(|(&xv, &v)| sa * v + sb * xv)
                    .collect(),
            ),
            Prediction::Sample => (
                out.to_vec(),
                x.iter()
                    .zip(out)
                    .map(|(&xv, &x0)| (xv - sa * x0) / sb.max(1e-8))
                    .collect(),
            ),
        };
        if let Some(r) = self.cfg.clip_sample {
            let r = r as f32;
            for v in &mut x0 {
                *v = v.clamp(-r, r);
            }
        }
        let (pa, pb) = (a_prev.sqrt() as f32, (1.0 - a_prev).max(0.0).sqrt() as f32);
        x0.iter()
            .zip(&eps)
            .map(|(&x0v, &e)| pa * x0v + pb * e)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(v: serde_json::Value) -> SchedulerConfig {
        let map = match v {
            serde_json::Value::Object(m) => m,
            _ => unreachable!(),
        };
        scheduler_config(Path::new("scheduler_config.json"), &map).expect("config")
    }

    #[test]
    fn spacings_match_diffusers() {
        let euler =
            cfg(json!({"_class_name": "EulerDiscreteScheduler", "timestep_spacing": "trailing"}));
        assert_eq!(euler.timesteps(1), vec![999.0]);
        assert_eq!(euler.timesteps(4), vec![999.0, 749.0, 499.0, 249.0]);
        let ddim = cfg(json!({"_class_name": "DDIMScheduler", "steps_offset": 1}));
        assert_eq!(ddim.timesteps(4), vec![751.0, 501.0, 251.0, 1.0]);
        // One step always starts at the end of the training schedule.
        assert_eq!(ddim.timesteps(1), vec![999.0]);
        let lin =
            cfg(json!({"_class_name": "EulerDiscreteScheduler", "timestep_spacing": "linspace"}));
        assert_eq!(lin.timesteps(2), vec![999.0, 0.0]);
    }

    #[test]
    fn sd_turbo_sigma_and_one_step_recover_x0() {
        let euler =
            cfg(json!({"_class_name": "EulerDiscreteScheduler", "timestep_spacing": "trailing"}));
        let run = euler.run(euler.timesteps(1), 999.0);
        // diffusers: sigma_max of the SD schedule is 14.6146...
        assert!(
            (run.init_sigma - 14.6146).abs() < 1e-3,
            "{}",
            run.init_sigma
        );
        // A perfect epsilon prediction lands on x0 in one step.
        let x0 = [0.3f32, -0.7];
        let eps = [1.2f32, 0.4];
        let x = run.add_noise(&x0, &eps, 0);
        let next = run.step(0, &x, &eps, &mut || vec![0.0; 2]);
        for (a, b) in next.iter().zip(x0) {
            assert!((a - b).abs() < 1e-4);
        }
    }

    #[test]
    fn ddim_perfect_prediction_recovers_x0() {
        let ddim = cfg(
            json!({"_class_name": "DDIMScheduler", "timestep_spacing": "trailing", "prediction_type": "v_prediction"}),
        );
        let run = ddim.run(ddim.timesteps(1), 999.0);
        let x0 = [0.5f32, -0.25];
        let eps = [0.9f32, -1.1];
        let x = run.add_noise(&x0, &eps, 0);
        let a = ddim.alphas_cumprod[999];
        let v: Vec<f32> = x0
            .iter()
            .zip(eps)
            .map(|(&x0, e)| a.sqrt() as f32 * e - (1.0 - a).sqrt() as f32 * x0)
            .collect();
        let next = run.step(0, &x, &v, &mut || vec![0.0; 2]);
        for (a, b) in next.iter().zip(x0) {
            assert!((a - b).abs() < 1e-4, "{a} {b}");
        }
    }
}
