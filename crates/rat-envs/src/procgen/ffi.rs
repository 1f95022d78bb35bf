//! The gym3 `libenv.h` C API (version 1), loaded at run time from Procgen's prebuilt library.

use std::ffi::{c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};

use crate::error::{Error, Result};

/// `LIBENV_VERSION` of the header the library was built against.
pub const LIBENV_VERSION: c_int = 1;
/// `LIBENV_MAX_NAME_LEN`.
pub const MAX_NAME_LEN: usize = 128;
/// `LIBENV_MAX_NDIM`.
pub const MAX_NDIM: usize = 16;

/// `enum libenv_dtype`.
pub const DTYPE_UINT8: c_int = 1;
/// `enum libenv_dtype`.
pub const DTYPE_INT32: c_int = 2;
/// `enum libenv_space_name`.
pub const SPACE_OBSERVATION: c_int = 1;
/// `enum libenv_space_name`.
pub const SPACE_ACTION: c_int = 2;
/// `enum libenv_space_name`.
pub const SPACE_INFO: c_int = 3;

/// `union libenv_value`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union Value {
    pub uint8: u8,
    pub int32: i32,
    pub float32: f32,
}

/// `struct libenv_tensortype`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TensorType {
    pub name: [c_char; MAX_NAME_LEN],
    pub scalar_type: c_int,
    pub dtype: c_int,
    pub shape: [c_int; MAX_NDIM],
    pub ndim: c_int,
    pub low: Value,
    pub high: Value,
}

impl TensorType {
    /// The name up to its terminating NUL.
    pub fn name(&self) -> String {
        let bytes: Vec<u8> = self
            .name
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The shape as `usize`s.
    pub fn shape(&self) -> Vec<usize> {
        let ndim = (self.ndim.max(0) as usize).min(MAX_NDIM);
        self.shape[..ndim].iter().map(|d| *d as usize).collect()
    }
}

/// `struct libenv_option`: a name and `count` values of `dtype` at `data`.
#[repr(C)]
pub struct EnvOption {
    pub name: [c_char; MAX_NAME_LEN],
    pub dtype: c_int,
    pub count: c_int,
    pub data: *mut c_void,
}

/// `struct libenv_options`.
#[repr(C)]
pub struct EnvOptions {
    pub items: *mut EnvOption,
    pub count: c_int,
}

/// `struct libenv_buffers`: where the library writes observations, rewards, `first` flags and
/// infos, and reads actions (one pointer per space entry and environment).
#[repr(C)]
pub struct Buffers {
    pub ob: *mut *mut c_void,
    pub rew: *mut f32,
    pub first: *mut u8,
    pub info: *mut *mut c_void,
    pub ac: *mut *mut c_void,
}

type Version = unsafe extern "C" fn() -> c_int;
type Make = unsafe extern "C" fn(c_int, EnvOptions) -> *mut c_void;
type GetTensorTypes = unsafe extern "C" fn(*mut c_void, c_int, *mut TensorType) -> c_int;
type SetBuffers = unsafe extern "C" fn(*mut c_void, *mut Buffers);
type Handle = unsafe extern "C" fn(*mut c_void);

/// The library's entry points. The library stays loaded for the life of the process (as in
/// gym3, which caches it): Qt, linked into it, does not expect to be unloaded.
pub struct Lib {
    /// Where it was loaded from.
    pub dir: PathBuf,
    pub make: Make,
    pub get_tensortypes: GetTensorTypes,
    pub set_buffers: SetBuffers,
    pub observe: Handle,
    pub act: Handle,
    pub close: Handle,
    _lib: Library,
}

/// Where `scripts/fetch-procgen.sh` puts the library and assets: `RAT_PROCGEN_DIR`, else
/// `.procgen` at the workspace root.
pub fn procgen_dir() -> PathBuf {
    std::env::var_os("RAT_PROCGEN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.procgen"))
}

/// How to get the library, for the one-line error when it is missing.
pub const HELP: &str =
    "run scripts/fetch-procgen.sh once (or set RAT_PROCGEN_DIR to where it put the files)";

/// The library, loaded once per process.
pub fn lib() -> Result<&'static Lib> {
    static LIB: OnceLock<std::result::Result<Lib, String>> = OnceLock::new();
    LIB.get_or_init(|| load(&procgen_dir()))
        .as_ref()
        .map_err(|e| Error::ProcgenUnavailable(e.clone()))
}

/// glibc's `RTLD_DEEPBIND`: the library's own symbols first (as gym3 loads it), so its copy of
/// Qt and zlib cannot clash with anything else in the process.
const RTLD_DEEPBIND: c_int = 0x0008;

fn load(dir: &Path) -> std::result::Result<Lib, String> {
    let path = dir.join("libenv.so");
    if !path.is_file() || !dir.join("assets").is_dir() {
        return Err(format!(
            "Procgen is not installed: {} not found; {HELP}",
            path.display()
        ));
    }
    // SAFETY: loading runs the library's initialisers; it is Procgen's own prebuilt library,
    // checked by checksum when it was fetched.
    let lib = unsafe { Library::open(Some(&path), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND) }
        .map_err(|e| format!("cannot load {}: {e}; {HELP}", path.display()))?;
    // SAFETY: the symbol types are those of libenv.h version 1, checked by libenv_version below.
    unsafe {
        let sym = |name: &str| {
            format!(
                "{}: no symbol {name} (not a gym3 libenv library)",
                path.display()
            )
        };
        let version: Version = *lib
            .get::<Version>(b"libenv_version\0")
            .map_err(|_| sym("libenv_version"))?;
        let v = version();
        if v != LIBENV_VERSION {
            return Err(format!(
                "{}: libenv version {v}, expected {LIBENV_VERSION}; {HELP}",
                path.display()
            ));
        }
        Ok(Lib {
            dir: dir.to_path_buf(),
            make: *lib
                .get::<Make>(b"libenv_make\0")
                .map_err(|_| sym("libenv_make"))?,
            get_tensortypes: *lib
                .get::<GetTensorTypes>(b"libenv_get_tensortypes\0")
                .map_err(|_| sym("libenv_get_tensortypes"))?,
            set_buffers: *lib
                .get::<SetBuffers>(b"libenv_set_buffers\0")
                .map_err(|_| sym("libenv_set_buffers"))?,
            observe: *lib
                .get::<Handle>(b"libenv_observe\0")
                .map_err(|_| sym("libenv_observe"))?,
            act: *lib
                .get::<Handle>(b"libenv_act\0")
                .map_err(|_| sym("libenv_act"))?,
            close: *lib
                .get::<Handle>(b"libenv_close\0")
                .map_err(|_| sym("libenv_close"))?,
            _lib: lib,
        })
    }
}

/// Options as the library reads them: strings and bools as `uint8` arrays, integers as `int32`.
/// The values live here until the environment is made.
#[derive(Default)]
pub struct OptionList {
    names: Vec<String>,
    data: Vec<Vec<u8>>,
    dtypes: Vec<c_int>,
    counts: Vec<c_int>,
}

impl OptionList {
    /// A string option (no terminating NUL, as gym3 passes it).
    pub fn string(&mut self, name: &str, value: &str) {
        self.push(name, value.as_bytes().to_vec(), DTYPE_UINT8, value.len());
    }

    /// A boolean option.
    pub fn bool(&mut self, name: &str, value: bool) {
        self.push(name, vec![u8::from(value)], DTYPE_UINT8, 1);
    }

    /// An integer option.
    pub fn int(&mut self, name: &str, value: i32) {
        self.push(name, value.to_ne_bytes().to_vec(), DTYPE_INT32, 1);
    }

    fn push(&mut self, name: &str, data: Vec<u8>, dtype: c_int, count: usize) {
        self.names.push(name.to_string());
        self.data.push(data);
        self.dtypes.push(dtype);
        self.counts.push(count as c_int);
    }

    /// The C array; valid while `self` lives and is not changed.
    pub fn items(&mut self) -> Vec<EnvOption> {
        let mut items = Vec::with_capacity(self.names.len());
        for i in 0..self.names.len() {
            let mut name = [0 as c_char; MAX_NAME_LEN];
            for (dst, src) in name
                .iter_mut()
                .zip(self.names[i].bytes().take(MAX_NAME_LEN - 1))
            {
                *dst = src as c_char;
            }
            items.push(EnvOption {
                name,
                dtype: self.dtypes[i],
                count: self.counts[i],
                data: self.data[i].as_mut_ptr().cast(),
            });
        }
        items
    }
}
