//! The MuJoCo mechanics every task shares (Gymnasium's `MujocoEnv`): load a model, reset, set a
//! state, step with a frame skip, and read MuJoCo's arrays as slices.

use std::ffi::{CStr, CString, c_char, c_int};
use std::path::Path;
use std::ptr::NonNull;

use mujoco_rs::mujoco_c::{
    mj_deleteData, mj_deleteModel, mj_forward, mj_getState, mj_loadXML, mj_makeData, mj_name2id,
    mj_resetData, mj_rnePostConstraint, mj_setState, mj_stateSize, mj_step, mjData, mjModel,
    mjtObj, mjtState,
};

use crate::error::{Error, Result};

/// One MuJoCo model and its data, owned exclusively.
pub(crate) struct Sim {
    model: NonNull<mjModel>,
    data: NonNull<mjData>,
    /// Sizes, cached from the model.
    pub nq: usize,
    pub nv: usize,
    pub nu: usize,
    pub nbody: usize,
    /// Physics steps per environment step.
    pub frame_skip: usize,
}

// SAFETY: a `Sim` owns its `mjModel` and `mjData` exclusively (created in `load`, freed in
// `drop`, never shared or aliased outside `&self`/`&mut self` borrows), and MuJoCo keeps no
// thread-local state for them, so moving a `Sim` to another thread is sound. It is not `Sync`.
unsafe impl Send for Sim {}

impl Drop for Sim {
    fn drop(&mut self) {
        // SAFETY: both pointers came from mj_makeData / mj_loadXML and are freed exactly once.
        unsafe {
            mj_deleteData(self.data.as_ptr());
            mj_deleteModel(self.model.as_ptr());
        }
    }
}

impl Sim {
    /// Loads `xml` (as `MjModel.from_xml_path`) and makes its data (as `MjData(model)`).
    pub fn load(xml: &Path, frame_skip: usize) -> Result<Self> {
        let path = CString::new(xml.as_os_str().as_encoded_bytes()).map_err(|_| {
            Error::Mujoco(format!("model path {} contains a NUL byte", xml.display()))
        })?;
        let mut err: [c_char; 1000] = [0; 1000];
        // SAFETY: `path` is NUL-terminated, `err` is writable for its length, no VFS.
        let model = unsafe {
            mj_loadXML(
                path.as_ptr(),
                std::ptr::null(),
                err.as_mut_ptr(),
                err.len() as c_int,
            )
        };
        let model = NonNull::new(model).ok_or_else(|| {
            // SAFETY: MuJoCo NUL-terminates the message within the buffer.
            let msg = unsafe { CStr::from_ptr(err.as_ptr()) }
                .to_string_lossy()
                .into_owned();
            Error::Mujoco(format!("could not load {}: {msg}", xml.display()))
        })?;
        // SAFETY: `model` is a valid model.
        let data = NonNull::new(unsafe { mj_makeData(model.as_ptr()) });
        let Some(data) = data else {
            // SAFETY: `model` is valid and owned here.
            unsafe { mj_deleteModel(model.as_ptr()) };
            return Err(Error::Mujoco(format!(
                "could not allocate mjData for {}",
                xml.display()
            )));
        };
        // SAFETY: `model` is valid.
        let m = unsafe { model.as_ref() };
        let size = |n: i64| usize::try_from(n).unwrap_or(0);
        Ok(Self {
            model,
            data,
            nq: size(m.nq),
            nv: size(m.nv),
            nu: size(m.nu),
            nbody: size(m.nbody),
            frame_skip,
        })
    }

    fn m(&self) -> &mjModel {
        // SAFETY: the model is valid for the lifetime of `self` and never written after loading.
        unsafe { self.model.as_ref() }
    }

    fn d(&self) -> &mjData {
        // SAFETY: the data is valid for the lifetime of `self`; writes need `&mut self`.
        unsafe { self.data.as_ref() }
    }

    /// `mj_resetData`.
    pub fn reset_data(&mut self) {
        // SAFETY: valid model and data that belong together.
        unsafe { mj_resetData(self.model.as_ptr(), self.data.as_ptr()) }
    }

    /// Gymnasium's `set_state`: writes qpos and qvel, then `mj_forward`.
    pub fn set_state(&mut self, qpos: &[f64], qvel: &[f64]) -> Result<()> {
        if qpos.len() != self.nq || qvel.len() != self.nv {
            return Err(Error::Shape {
                op: "set_state",
                msg: format!(
                    "need qpos of {} and qvel of {}, got {} and {}",
                    self.nq,
                    self.nv,
                    qpos.len(),
                    qvel.len()
                ),
            });
        }
        self.qpos_mut().copy_from_slice(qpos);
        self.qvel_mut().copy_from_slice(qvel);
        // SAFETY: valid model and data.
        unsafe { mj_forward(self.model.as_ptr(), self.data.as_ptr()) };
        Ok(())
    }

    /// MuJoCo's integration state (`mjSTATE_INTEGRATION`: time, qpos, qvel, act, the solver's
    /// warm start, controls, applied forces, mocap poses, …): everything `mj_step` reads.
    pub fn integration_state(&self) -> Vec<f64> {
        let sig = mjtState::mjSTATE_INTEGRATION as c_int;
        // SAFETY: valid model and data; the buffer has mj_stateSize entries.
        unsafe {
            let n = mj_stateSize(self.model.as_ptr(), sig).max(0) as usize;
            let mut state = vec![0.0; n];
            mj_getState(
                self.model.as_ptr(),
                self.data.as_ptr(),
                state.as_mut_ptr(),
                sig,
            );
            state
        }
    }

    /// Writes an [`integration_state`](Self::integration_state) back (no `mj_forward`).
    pub fn set_integration_state(&mut self, state: &[f64]) -> Result<()> {
        let sig = mjtState::mjSTATE_INTEGRATION as c_int;
        // SAFETY: valid model and data; the length is checked against mj_stateSize.
        unsafe {
            let n = mj_stateSize(self.model.as_ptr(), sig).max(0) as usize;
            if state.len() != n {
                return Err(Error::Shape {
                    op: "set_integration_state",
                    msg: format!("need {n} values, got {}", state.len()),
                });
            }
            mj_setState(self.model.as_ptr(), self.data.as_ptr(), state.as_ptr(), sig);
        }
        Ok(())
    }

    /// Gymnasium's `do_simulation`: `ctrl = action` (unclipped), `mj_step` × frame_skip, then
    /// `mj_rnePostConstraint` (fills `cfrc_ext`, `cacc`, `cfrc_int`). The caller checks the length.
    pub fn do_simulation(&mut self, action: &[f32]) {
        for (c, a) in self.ctrl_mut().iter_mut().zip(action) {
            *c = f64::from(*a);
        }
        let (m, d) = (self.model.as_ptr(), self.data.as_ptr());
        // SAFETY: valid model and data.
        unsafe {
            for _ in 0..self.frame_skip {
                mj_step(m, d);
            }
            mj_rnePostConstraint(m, d);
        }
    }

    /// The id of a named body, or an error naming it.
    pub fn body_id(&self, name: &str) -> Result<usize> {
        self.name2id(mjtObj::mjOBJ_BODY, name)
    }

    fn name2id(&self, kind: mjtObj, name: &str) -> Result<usize> {
        let c = CString::new(name).map_err(|_| Error::Mujoco(format!("bad name {name:?}")))?;
        // SAFETY: valid model, NUL-terminated name.
        let id = unsafe { mj_name2id(self.model.as_ptr(), kind as c_int, c.as_ptr()) };
        usize::try_from(id)
            .map_err(|_| Error::Mujoco(format!("the model has no {kind:?} named {name:?}")))
    }

    /// Physics timestep (`opt.timestep`).
    pub fn timestep(&self) -> f64 {
        self.m().opt.timestep
    }

    /// Gymnasium's `dt = opt.timestep × frame_skip`.
    pub fn dt(&self) -> f64 {
        self.timestep() * self.frame_skip as f64
    }

    /// The model and data pointers, for MuJoCo's visualisation calls ([`super::render`]), which
    /// read the model and write only the data's scratch space.
    pub fn raw(&mut self) -> (*const mjModel, *mut mjData) {
        (self.model.as_ptr(), self.data.as_ptr())
    }

    /// The number of geoms.
    pub fn ngeom(&self) -> usize {
        usize::try_from(self.m().ngeom).unwrap_or(0)
    }

    /// Positions of every geom (`geom_xpos`, ngeom × 3).
    pub fn geom_xpos(&self) -> &[f64] {
        // SAFETY: geom_xpos has ngeom × 3 entries, alive as long as `self`.
        unsafe { std::slice::from_raw_parts(self.d().geom_xpos, 3 * self.ngeom()) }
    }

    /// The model's extent (`stat.extent`), Gymnasium's default camera distance.
    pub fn extent(&self) -> f64 {
        self.m().stat.extent
    }

    /// The model's offscreen buffer size (`vis.global.offwidth`, `offheight`).
    pub fn offscreen_size(&self) -> (usize, usize) {
        let g = &self.m().vis.global;
        let size = |n: c_int| usize::try_from(n).unwrap_or(0);
        (size(g.offwidth), size(g.offheight))
    }

    /// Actuator control ranges as `(low, high)` per actuator.
    pub fn ctrlrange(&self) -> Vec<(f64, f64)> {
        // SAFETY: actuator_ctrlrange has nu × 2 entries.
        let r = unsafe { std::slice::from_raw_parts(self.m().actuator_ctrlrange, 2 * self.nu) };
        r.chunks_exact(2).map(|c| (c[0], c[1])).collect()
    }
}

/// Read-only views of MuJoCo arrays (`rows × cols` each, flattened row-major).
macro_rules! arrays {
    ($($(#[$doc:meta])* $name:ident: $owner:ident . $field:ident [$rows:ident * $cols:expr];)*) => {
        impl Sim {
            $(
                $(#[$doc])*
                pub fn $name(&self) -> &[f64] {
                    // SAFETY: MuJoCo allocates this array with exactly rows × cols doubles; it
                    // lives as long as `self` and is written only through `&mut self`.
                    unsafe { std::slice::from_raw_parts(self.$owner().$field, self.$rows * $cols) }
                }
            )*
        }
    };
}

arrays! {
    /// Initial joint positions (`qpos0`, Gymnasium's `init_qpos`).
    qpos0: m.qpos0[nq * 1];
    /// Body masses.
    body_mass: m.body_mass[nbody * 1];
    /// Joint positions.
    qpos: d.qpos[nq * 1];
    /// Joint velocities.
    qvel: d.qvel[nv * 1];
    /// Controls.
    ctrl: d.ctrl[nu * 1];
    /// Body frame positions (lag qpos by one substep after a step).
    xpos: d.xpos[nbody * 3];
    /// Body centre-of-mass positions (lag as `xpos`).
    xipos: d.xipos[nbody * 3];
    /// Body inertias in the com frame.
    cinert: d.cinert[nbody * 10];
    /// Body com velocities.
    cvel: d.cvel[nbody * 6];
    /// Actuator forces in joint space.
    qfrc_actuator: d.qfrc_actuator[nv * 1];
    /// Constraint forces in joint space.
    qfrc_constraint: d.qfrc_constraint[nv * 1];
    /// External (contact) forces per body.
    cfrc_ext: d.cfrc_ext[nbody * 6];
}

impl Sim {
    /// Position of site 0 (the only site the tasks read: InvertedDoublePendulum's `tip`).
    pub fn site0_xpos(&self) -> Result<[f64; 3]> {
        if self.m().nsite < 1 {
            return Err(Error::Mujoco("the model has no site".into()));
        }
        // SAFETY: site_xpos has nsite × 3 ≥ 3 entries.
        let s = unsafe { std::slice::from_raw_parts(self.d().site_xpos, 3) };
        Ok([s[0], s[1], s[2]])
    }

    fn qpos_mut(&mut self) -> &mut [f64] {
        // SAFETY: nq doubles, exclusively borrowed through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.data.as_ref().qpos, self.nq) }
    }

    fn qvel_mut(&mut self) -> &mut [f64] {
        // SAFETY: nv doubles, exclusively borrowed through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.data.as_ref().qvel, self.nv) }
    }

    fn ctrl_mut(&mut self) -> &mut [f64] {
        // SAFETY: nu doubles, exclusively borrowed through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.data.as_ref().ctrl, self.nu) }
    }
}
