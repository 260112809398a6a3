//! One memory arena for every session's intermediate tensors, registered on
//! ONNX Runtime's environment (`CreateAndRegisterAllocator`; sessions opt in
//! with `session.use_env_allocators`). A session's own arena keeps the most
//! its largest run ever needed; a voice has up to six sessions (an encoder
//! and a decoder on all threads and one per thread), most of them idle at
//! any moment, so one arena holds only what runs at the same time. It keeps
//! what the busiest moment needed until a run asks it to shrink
//! ([`shrinking`]), which `lib.rs` does once speech is idle.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};

use ort::environment::Environment;
use ort::memory::{AllocationDevice, AllocatorType, MemoryInfo, MemoryType};
use ort::AsPointer;

static SHARED: AtomicBool = AtomicBool::new(false);

/// Whether the shared arena is registered (sessions then use it).
pub fn shared() -> bool {
    SHARED.load(Ordering::Relaxed)
}

/// Registers the CPU arena on `env`, once per process (one environment).
pub fn register(env: &Environment) {
    let info = match MemoryInfo::new(
        AllocationDevice::CPU,
        0,
        AllocatorType::Arena,
        MemoryType::Default,
    ) {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(error = %e, "no shared ONNX Runtime arena; each session keeps its own");
            return;
        }
    };
    let api = ort::api();
    // The default arena config (doubling extensions): asking for exactly
    // what each run needs (`kSameAsRequested`) left it fragmented, growing
    // from 300 to 700 MB over a few speech benchmark rounds.
    let cfg: *mut ort::sys::OrtArenaCfg = std::ptr::null_mut();
    // SAFETY: the pointers are live for the call (the environment is the
    // process's, the memory info and the config are dropped after it; a
    // null config asks for the default one). The status is ours to release.
    let status = unsafe { (api.CreateAndRegisterAllocator)(env.ptr().cast_mut(), info.ptr(), cfg) };
    if status.0.is_null() {
        SHARED.store(true, Ordering::Relaxed);
        map_large_blocks();
        return;
    }
    // SAFETY: a non-null status from the call above, released once.
    let message = unsafe {
        let m = (api.GetErrorMessage)(status.0);
        let text = if m.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(m).to_string_lossy().into_owned()
        };
        (api.ReleaseStatus)(status.0);
        text
    };
    tracing::warn!(error = %message, "no shared ONNX Runtime arena; each session keeps its own");
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
extern "C" {
    fn malloc_trim(pad: usize) -> std::ffi::c_int;
    fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
}

/// Has glibc map every block of 1 MiB or more on its own, so that a region
/// the arena frees when it shrinks goes back to the system at once. By
/// default glibc raises that threshold to the size of each mapped block
/// freed (up to 32 MiB), after which the arena's next regions come from its
/// heaps, where freed memory stays with the process.
fn map_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const M_MMAP_THRESHOLD: std::ffi::c_int = -3;
        // SAFETY: sets one of glibc's malloc parameters.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 1 << 20);
        }
    }
}

/// Options for a run after which the shared arena hands its free regions
/// back to the system (`memory.enable_memory_arena_shrinkage`): ONNX
/// Runtime shrinks an arena only at the end of a run that asks for it.
pub fn shrinking() -> Result<ort::session::RunOptions, ort::Error> {
    let mut opts = ort::session::RunOptions::new()?;
    opts.set("memory.enable_memory_arena_shrinkage", "cpu:0")?;
    Ok(opts)
}

/// Hands the C heap's free memory back to the system. Loading a voice
/// parses its graphs in ONNX Runtime (C++, on the C heap), hundreds of MB
/// freed again at once that glibc would otherwise keep for the process.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only walks glibc's own heaps.
    unsafe {
        malloc_trim(0);
    }
}
