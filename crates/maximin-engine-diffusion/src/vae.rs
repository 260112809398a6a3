//! The autoencoders: diffusers' `AutoencoderKL` (SD 1.x/2.x, SD-Turbo) built
//! from candle's public blocks, and `AutoencoderTiny` (TAESD, as SDXS ships).
//! candle's own `AutoEncoderKL` samples its posterior from the CPU device's
//! unseedable generator and keeps the mean private, so the KL encoder is
//! assembled here and sampled with the request's seed.

use candle_core::{Module, Result, Tensor};
use candle_nn::{conv2d, conv2d_no_bias, group_norm, Conv2d, Conv2dConfig, GroupNorm, VarBuilder};
use candle_transformers::models::stable_diffusion::unet_2d_blocks::{
    DownEncoderBlock2D, DownEncoderBlock2DConfig, UNetMidBlock2D, UNetMidBlock2DConfig,
    UpDecoderBlock2D, UpDecoderBlock2DConfig,
};

use crate::config::{VaeConfig, VaeKind};

const PAD1: Conv2dConfig = Conv2dConfig {
    padding: 1,
    stride: 1,
    dilation: 1,
    groups: 1,
    cudnn_fwd_algo: None,
};

pub(crate) enum Vae {
    Kl(Box<Kl>),
    Tiny(Tiny),
}

impl Vae {
    pub(crate) fn new(vb: VarBuilder, cfg: &VaeConfig) -> Result<Self> {
        Ok(match &cfg.kind {
            VaeKind::Kl {
                block_out_channels,
                layers_per_block,
                norm_num_groups,
                use_quant_conv,
                use_post_quant_conv,
            } => Vae::Kl(Box::new(Kl::new(
                vb,
                cfg,
                block_out_channels,
                *layers_per_block,
                *norm_num_groups,
                *use_quant_conv,
                *use_post_quant_conv,
            )?)),
            VaeKind::Tiny {
                encoder_channels,
                decoder_channels,
                encoder_blocks,
                decoder_blocks,
            } => Vae::Tiny(Tiny::new(
                vb,
                cfg,
                encoder_channels,
                decoder_channels,
                encoder_blocks,
                decoder_blocks,
            )?),
        })
    }

    /// Image `[b, 3, h, w]` in [-1, 1] → the latent distribution's mean and
    /// standard deviation (the tiny autoencoder is deterministic: std is None).
    pub(crate) fn encode(&self, xs: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        match self {
            Vae::Kl(k) => k.encode(xs),
            Vae::Tiny(t) => Ok((t.encode(xs)?, None)),
        }
    }

    /// Unscaled latents → image in [-1, 1] (not yet clamped).
    pub(crate) fn decode(&self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Vae::Kl(k) => k.decode(xs),
            Vae::Tiny(t) => t.decode(xs),
        }
    }
}

pub(crate) struct Kl {
    conv_in: Conv2d,
    down: Vec<DownEncoderBlock2D>,
    enc_mid: UNetMidBlock2D,
    enc_norm: GroupNorm,
    enc_out: Conv2d,
    quant_conv: Option<Conv2d>,
    post_quant_conv: Option<Conv2d>,
    dec_in: Conv2d,
    dec_mid: UNetMidBlock2D,
    up: Vec<UpDecoderBlock2D>,
    dec_norm: GroupNorm,
    dec_out: Conv2d,
}

impl Kl {
    #[allow(clippy::too_many_arguments)]
    fn new(
        vb: VarBuilder,
        cfg: &VaeConfig,
        channels: &[usize],
        layers: usize,
        groups: usize,
        use_quant_conv: bool,
        use_post_quant_conv: bool,
    ) -> Result<Self> {
        let latent = cfg.latent_channels;
        let first = channels[0];
        let last = channels[channels.len() - 1];
        let mid_cfg = UNetMidBlock2DConfig {
            num_layers: 1,
            resnet_eps: 1e-6,
            resnet_groups: Some(groups),
            attn_num_head_channels: None,
            output_scale_factor: 1.0,
        };

        let e = vb.pp("encoder");
        let conv_in = conv2d(cfg.in_channels, first, 3, PAD1, e.pp("conv_in"))?;
        let mut down = Vec::with_capacity(channels.len());
        for (i, &out) in channels.iter().enumerate() {
            let inp = if i == 0 { first } else { channels[i - 1] };
            let c = DownEncoderBlock2DConfig {
                num_layers: layers,
                resnet_eps: 1e-6,
                resnet_groups: groups,
                output_scale_factor: 1.0,
                add_downsample: i + 1 < channels.len(),
                downsample_padding: 0,
            };
            down.push(DownEncoderBlock2D::new(
                e.pp("down_blocks").pp(i.to_string()),
                inp,
                out,
                c,
            )?);
        }
        let enc_mid = UNetMidBlock2D::new(e.pp("mid_block"), last, None, mid_cfg)?;
        let enc_norm = group_norm(groups, last, 1e-6, e.pp("conv_norm_out"))?;
        let enc_out = conv2d(last, 2 * latent, 3, PAD1, e.pp("conv_out"))?;

        let d = vb.pp("decoder");
        let dec_in = conv2d(latent, last, 3, PAD1, d.pp("conv_in"))?;
        let dec_mid = UNetMidBlock2D::new(d.pp("mid_block"), last, None, mid_cfg)?;
        let rev: Vec<usize> = channels.iter().rev().copied().collect();
        let mut up = Vec::with_capacity(rev.len());
        for (i, &out) in rev.iter().enumerate() {
            let inp = if i == 0 { rev[0] } else { rev[i - 1] };
            let c = UpDecoderBlock2DConfig {
                num_layers: layers + 1,
                resnet_eps: 1e-6,
                resnet_groups: groups,
                output_scale_factor: 1.0,
                add_upsample: i + 1 < rev.len(),
            };
            up.push(UpDecoderBlock2D::new(
                d.pp("up_blocks").pp(i.to_string()),
                inp,
                out,
                c,
            )?);
        }
        let dec_norm = group_norm(groups, first, 1e-6, d.pp("conv_norm_out"))?;
        let dec_out = conv2d(first, cfg.out_channels, 3, PAD1, d.pp("conv_out"))?;

        let one = Conv2dConfig::default();
        let quant_conv = use_quant_conv
            .then(|| conv2d(2 * latent, 2 * latent, 1, one, vb.pp("quant_conv")))
            .transpose()?;
        let post_quant_conv = use_post_quant_conv
            .then(|| conv2d(latent, latent, 1, one, vb.pp("post_quant_conv")))
            .transpose()?;
        Ok(Kl {
            conv_in,
            down,
            enc_mid,
            enc_norm,
            enc_out,
            quant_conv,
            post_quant_conv,
            dec_in,
            dec_mid,
            up,
            dec_norm,
            dec_out,
        })
    }

    fn encode(&self, xs: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        let mut xs = self.conv_in.forward(xs)?;
        for b in &self.down {
            xs = b.forward(&xs)?;
        }
        let xs = self.enc_mid.forward(&xs, None)?;
        let xs = candle_nn::ops::silu(&self.enc_norm.forward(&xs)?)?;
        let mut params = self.enc_out.forward(&xs)?;
        if let Some(q) = &self.quant_conv {
            params = q.forward(&params)?;
        }
        let latent = params.dim(1)? / 2;
        let mean = params.narrow(1, 0, latent)?;
        // diffusers clamps the log-variance to [-30, 20].
        let logvar = params.narrow(1, latent, latent)?.clamp(-30f32, 20f32)?;
        let std = (logvar * 0.5)?.exp()?;
        Ok((mean, Some(std)))
    }

    fn decode(&self, xs: &Tensor) -> Result<Tensor> {
        let xs = match &self.post_quant_conv {
            Some(p) => p.forward(xs)?,
            None => xs.clone(),
        };
        let xs = self.dec_in.forward(&xs)?;
        let mut xs = self.dec_mid.forward(&xs, None)?;
        for b in &self.up {
            xs = b.forward(&xs)?;
        }
        let xs = candle_nn::ops::silu(&self.dec_norm.forward(&xs)?)?;
        self.dec_out.forward(&xs)
    }
}

/// diffusers' `AutoencoderTinyBlock`: three 3×3 convolutions with ReLU, a
/// skip (1×1 without bias when the width changes), ReLU after the sum.
struct TinyBlock {
    convs: [Conv2d; 3],
    skip: Option<Conv2d>,
}

impl TinyBlock {
    fn new(vb: VarBuilder, inp: usize, out: usize) -> Result<Self> {
        let c = vb.pp("conv");
        let convs = [
            conv2d(inp, out, 3, PAD1, c.pp("0"))?,
            conv2d(out, out, 3, PAD1, c.pp("2"))?,
            conv2d(out, out, 3, PAD1, c.pp("4"))?,
        ];
        let skip = (inp != out)
            .then(|| conv2d_no_bias(inp, out, 1, Conv2dConfig::default(), vb.pp("skip")))
            .transpose()?;
        Ok(TinyBlock { convs, skip })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let h = self.convs[0].forward(xs)?.relu()?;
        let h = self.convs[1].forward(&h)?.relu()?;
        let h = self.convs[2].forward(&h)?;
        let s = match &self.skip {
            Some(s) => s.forward(xs)?,
            None => xs.clone(),
        };
        (h + s)?.relu()
    }
}

enum TinyLayer {
    Conv(Conv2d),
    Relu,
    Block(TinyBlock),
    Upsample,
}

/// diffusers' `AutoencoderTiny`: `encoder.layers.N` / `decoder.layers.N` are
/// the indices of an `nn.Sequential` (activations and upsampling count).
pub(crate) struct Tiny {
    encoder: Vec<TinyLayer>,
    decoder: Vec<TinyLayer>,
}

impl Tiny {
    fn new(
        vb: VarBuilder,
        cfg: &VaeConfig,
        enc_ch: &[usize],
        dec_ch: &[usize],
        enc_blocks: &[usize],
        dec_blocks: &[usize],
    ) -> Result<Self> {
        let stride2 = Conv2dConfig { stride: 2, ..PAD1 };
        let e = vb.pp("encoder").pp("layers");
        let mut encoder = Vec::new();
        for (i, (&ch, &n)) in enc_ch.iter().zip(enc_blocks).enumerate() {
            let vb = e.pp(encoder.len().to_string());
            encoder.push(TinyLayer::Conv(if i == 0 {
                conv2d(cfg.in_channels, ch, 3, PAD1, vb)?
            } else {
                conv2d_no_bias(ch, ch, 3, stride2, vb)?
            }));
            for _ in 0..n {
                let vb = e.pp(encoder.len().to_string());
                encoder.push(TinyLayer::Block(TinyBlock::new(vb, ch, ch)?));
            }
        }
        let last = enc_ch[enc_ch.len() - 1];
        let vb_out = e.pp(encoder.len().to_string());
        encoder.push(TinyLayer::Conv(conv2d(
            last,
            cfg.latent_channels,
            3,
            PAD1,
            vb_out,
        )?));

        let d = vb.pp("decoder").pp("layers");
        let mut decoder = Vec::new();
        decoder.push(TinyLayer::Conv(conv2d(
            cfg.latent_channels,
            dec_ch[0],
            3,
            PAD1,
            d.pp("0"),
        )?));
        decoder.push(TinyLayer::Relu);
        for (i, (&ch, &n)) in dec_ch.iter().zip(dec_blocks).enumerate() {
            let is_final = i + 1 == dec_ch.len();
            for _ in 0..n {
                let vb = d.pp(decoder.len().to_string());
                decoder.push(TinyLayer::Block(TinyBlock::new(vb, ch, ch)?));
            }
            if !is_final {
                decoder.push(TinyLayer::Upsample);
            }
            let vb = d.pp(decoder.len().to_string());
            decoder.push(TinyLayer::Conv(if is_final {
                conv2d(ch, cfg.out_channels, 3, PAD1, vb)?
            } else {
                conv2d_no_bias(ch, ch, 3, PAD1, vb)?
            }));
        }
        Ok(Tiny { encoder, decoder })
    }

    fn run(layers: &[TinyLayer], mut xs: Tensor) -> Result<Tensor> {
        for l in layers {
            xs = match l {
                TinyLayer::Conv(c) => c.forward(&xs)?,
                TinyLayer::Relu => xs.relu()?,
                TinyLayer::Block(b) => b.forward(&xs)?,
                TinyLayer::Upsample => {
                    let (_, _, h, w) = xs.dims4()?;
                    xs.upsample_nearest2d(2 * h, 2 * w)?
                }
            };
        }
        Ok(xs)
    }

    fn encode(&self, xs: &Tensor) -> Result<Tensor> {
        // The tiny encoder takes [0, 1] images.
        Self::run(&self.encoder, ((xs + 1.0)? * 0.5)?)
    }

    fn decode(&self, xs: &Tensor) -> Result<Tensor> {
        let xs = ((xs / 3.0)?.tanh()? * 3.0)?;
        let out = Self::run(&self.decoder, xs)?;
        // [0, 1] → [-1, 1] like the KL decoder's output.
        (out * 2.0)? - 1.0
    }
}
