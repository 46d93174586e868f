//! seedvae's kernels (`kernels/vae.cu`) compiled by NVRTC for the GPU at hand at first use, and
//! kept in the cache under a key of the source, the GPU architecture, NVRTC's version and the
//! driver's: any of them changing compiles again.

use super::ffi::Nvrtc;
use crate::{Error, Result};
use cudarc::driver::{CudaContext, CudaFunction};
use std::ffi::{c_char, CString};
use std::path::Path;
use std::sync::Arc;

/// The CUDA C source, built into seedvae.
pub const SOURCE: &str = include_str!("../../../../../kernels/vae.cu");

/// The kernels, by the names kernels/vae.cu gives them.
pub struct Kernels {
    pub to_channels_last: CudaFunction,
    pub to_channels_first: CudaFunction,
    pub take_channels: CudaFunction,
    pub take_channels_bias: CudaFunction,
    pub pad_channels: CudaFunction,
    pub pad_right_bottom: CudaFunction,
    pub add_bias_into: CudaFunction,
    pub gn_finish: CudaFunction,
    pub add_bias_v8: CudaFunction,
    pub add_into_v8: CudaFunction,
    pub gn_sums_v8: CudaFunction,
    pub gn_apply_v8: CudaFunction,
    pub shuffle: CudaFunction,
    pub softmax_columns: CudaFunction,
    pub count_unequal: CudaFunction,
}

/// FNV-1a, 64 bits: a cache key, not a checksum (the cubin is checked by the driver on load).
pub fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for p in parts {
        for &b in p.iter().chain(&[0xff]) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

impl Kernels {
    pub fn load(
        ctx: &Arc<CudaContext>,
        nvrtc: &Nvrtc,
        (major, minor): (i32, i32),
        elem: &str,
        cache: Option<&Path>,
    ) -> Result<Kernels> {
        let arch = format!("sm_{major}{minor}");
        let (mut vmaj, mut vmin) = (0, 0);
        // SAFETY: NVRTC writes two ints.
        nvrtc.check(unsafe { (nvrtc.version)(&mut vmaj, &mut vmin) }, "version")?;
        let mut driver = 0;
        // SAFETY: the driver writes one int (the driver library was checked present at open).
        unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut driver) };
        let key = fnv(&[
            SOURCE.as_bytes(),
            arch.as_bytes(),
            format!("nvrtc {vmaj}.{vmin} driver {driver}").as_bytes(),
        ]);
        let file = cache.map(|d| d.join(format!("vae-{arch}-{key:016x}.cubin")));
        let cubin = match file.as_ref().and_then(|f| std::fs::read(f).ok()) {
            Some(b) => b,
            None => {
                let b = compile(nvrtc, &arch)?;
                if let Some(f) = &file {
                    store(f, &b);
                }
                b
            }
        };
        let module = ctx
            .load_module(cudarc::nvrtc::Ptx::from_binary(cubin))
            .map_err(|e| Error::Device(format!("loading seedvae's kernels for {arch}: {e}")))?;
        let f = |name: &str| {
            module
                .load_function(&format!("{name}_{elem}"))
                .map_err(|e| Error::Device(format!("seedvae's kernel {name}: {e}")))
        };
        Ok(Kernels {
            to_channels_last: f("to_channels_last")?,
            to_channels_first: f("to_channels_first")?,
            take_channels: f("take_channels")?,
            take_channels_bias: f("take_channels_bias")?,
            pad_channels: f("pad_channels")?,
            pad_right_bottom: f("pad_right_bottom")?,
            add_bias_into: f("add_bias_into")?,
            gn_finish: f("gn_finish")?,
            add_bias_v8: f("add_bias_v8")?,
            add_into_v8: f("add_into_v8")?,
            gn_sums_v8: f("gn_sums_v8")?,
            gn_apply_v8: f("gn_apply_v8")?,
            shuffle: f("shuffle")?,
            softmax_columns: f("softmax_columns")?,
            count_unequal: f("count_unequal")?,
        })
    }
}

/// Write the cubin beside its final name and move it in: a reader never sees half a file. A
/// cache that cannot be written only means compiling again next time.
fn store(file: &Path, bytes: &[u8]) {
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    let r = file
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&tmp, bytes))
        .and_then(|()| std::fs::rename(&tmp, file));
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// Compile [`SOURCE`] to a cubin for `arch`; NVRTC's log in the error when it fails.
fn compile(nvrtc: &Nvrtc, arch: &str) -> Result<Vec<u8>> {
    let src =
        CString::new(SOURCE).map_err(|_| Error::Device("kernel source holds a NUL".into()))?;
    let name = CString::new("vae.cu").expect("no NUL");
    let opts: Vec<CString> = [format!("--gpu-architecture={arch}"), "--std=c++14".into()]
        .into_iter()
        .map(|o| CString::new(o).expect("no NUL"))
        .collect();
    let opt_ptrs: Vec<*const c_char> = opts.iter().map(|o| o.as_ptr()).collect();
    let mut prog = std::ptr::null_mut();
    // SAFETY: NUL-terminated strings that outlive the program; no headers.
    nvrtc.check(
        unsafe {
            (nvrtc.create)(
                &mut prog,
                src.as_ptr(),
                name.as_ptr(),
                0,
                std::ptr::null(),
                std::ptr::null(),
            )
        },
        "create program",
    )?;
    // SAFETY: `prog` was created above and is destroyed once below, whatever happens.
    let r = unsafe { (nvrtc.compile)(prog, opt_ptrs.len() as i32, opt_ptrs.as_ptr()) };
    let out = if r != 0 {
        let mut n = 0usize;
        let mut log = String::new();
        // SAFETY: the log buffer holds the size NVRTC reported.
        if unsafe { (nvrtc.log_size)(prog, &mut n) } == 0 && n > 1 {
            let mut buf = vec![0u8; n];
            if unsafe { (nvrtc.log)(prog, buf.as_mut_ptr() as *mut c_char) } == 0 {
                log = String::from_utf8_lossy(&buf[..n - 1]).into_owned();
            }
        }
        nvrtc
            .check(r, &format!("compiling seedvae's kernels for {arch}"))
            .map_err(|e| Error::Device(format!("{e}\n{log}")))
            .map(|_| Vec::new())
    } else {
        let mut n = 0usize;
        // SAFETY: as above.
        nvrtc
            .check(unsafe { (nvrtc.cubin_size)(prog, &mut n) }, "cubin size")
            .and_then(|()| {
                let mut buf = vec![0u8; n];
                nvrtc
                    .check(
                        unsafe { (nvrtc.cubin)(prog, buf.as_mut_ptr() as *mut c_char) },
                        "cubin",
                    )
                    .map(|()| buf)
            })
    };
    // SAFETY: destroyed once.
    unsafe { (nvrtc.destroy)(&mut prog) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernels compile for the H200 (sm_90) and the RTX 50 series (sm_120) wherever NVRTC
    /// is found (`SEEDVAE_TEST_NVRTC`: a site-packages with NVIDIA's wheels, which
    /// scripts/test.sh points at its test venv's; no GPU needed), so a kernel edit is checked
    /// before it meets a GPU.
    #[test]
    fn the_kernels_compile_where_nvrtc_is_found() {
        let Some(site) = std::env::var_os("SEEDVAE_TEST_NVRTC") else {
            eprintln!("SEEDVAE_TEST_NVRTC unset: the kernels are not compiled here");
            return;
        };
        let nvrtc = Nvrtc::open(&super::super::wheel_lib_dirs(Path::new(&site)))
            .expect("NVRTC under SEEDVAE_TEST_NVRTC");
        for arch in ["sm_90", "sm_120"] {
            let cubin = compile(&nvrtc, arch).unwrap_or_else(|e| panic!("{arch}: {e}"));
            assert!(
                cubin.len() > 1000,
                "{arch}: a cubin of {} bytes",
                cubin.len()
            );
        }
    }
}
