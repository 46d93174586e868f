//! One convolution shape as a cuDNN graph: the operation graph of a forward convolution over
//! channels-last tensors, the engine configurations cuDNN's heuristics rank for it, and the
//! execution plans of the first few that build. The device times those on the first call of
//! the shape and keeps the fastest (heuristics' first choice was half as fast as the best on
//! the H200's largest shapes); every run binds the buffers of that call.
//!
//! Each plan's engine is known by its [`EngineId`] (cuDNN's global engine index and the knobs
//! set): the same conv over other frames or rows (frame groups, bands) runs the engine the
//! conv first ran with when cuDNN builds it for that shape, so each output sums its products in
//! the same order and a budget changes no rounding.

use super::ffi::{graph as g, Cudnn, Desc, Handle};
use super::Elem;
use crate::device::{ConvWeights, Dims, Pad};
use crate::{Error, Result};
use std::ffi::c_void;

/// The tensors' ids in the graph and in every run's variant pack.
const X: i64 = 1;
const W: i64 = 2;
const Y: i64 = 3;

/// A conv's geometry: the filter `[cout, cin, kt, ks, ks]`, temporal stride `st`, spatial stride
/// `ss` and spatial zero padding `p` on every side (none in time: the head frames are the input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Geometry {
    pub x: Dims,
    pub cout: usize,
    pub kt: usize,
    pub ks: usize,
    pub st: usize,
    pub ss: usize,
    pub p: usize,
}

impl Geometry {
    /// The conv without its extent in frames and rows: what frame groups and bands share.
    pub fn family(&self) -> Geometry {
        Geometry {
            x: Dims {
                t: 0,
                h: 0,
                ..self.x
            },
            ..*self
        }
    }

    /// The conv `w` over an input of `x` (its head frames joined, and padded right and bottom
    /// for [`Pad::RightBottom`], its channels padded to 8) as the CUDA device runs it: output
    /// channels stored padded to 8,
    /// spatial padding `k/2` all round, or the encoder downsampler's stride 2 with none.
    pub fn of<B>(x: Dims, w: &ConvWeights<B>, st: usize, pad: Pad) -> Geometry {
        let (ss, p) = match pad {
            Pad::Same => (1, w.ks / 2),
            Pad::RightBottom => (2, 0),
        };
        Geometry {
            x,
            cout: super::stored_channels(w.cout),
            kt: w.kt,
            ks: w.ks,
            st,
            ss,
            p,
        }
    }

    pub fn out(&self) -> Dims {
        let x = self.x;
        Dims::new(
            self.cout,
            (x.t - self.kt) / self.st + 1,
            (x.h + 2 * self.p - self.ks) / self.ss + 1,
            (x.w + 2 * self.p - self.ks) / self.ss + 1,
        )
    }
}

/// The descriptors made for a plan; all destroyed with it.
struct Made<'a> {
    c: &'a Cudnn,
    all: Vec<Desc>,
}

impl Made<'_> {
    fn make(&mut self, kind: i32, what: &str) -> Result<Desc> {
        let mut d = std::ptr::null_mut();
        // SAFETY: cuDNN writes one descriptor; it is kept for destruction at once.
        self.c
            .check(unsafe { (self.c.create_desc)(kind, &mut d) }, what)?;
        self.all.push(d);
        Ok(d)
    }

    fn set<T>(&self, d: Desc, attr: i32, ty: i32, v: &[T], what: &str) -> Result<()> {
        // SAFETY: `v` holds `v.len()` elements of the attribute's type `ty`.
        self.c.check(
            unsafe { (self.c.set_attr)(d, attr, ty, v.len() as i64, v.as_ptr() as *const c_void) },
            what,
        )
    }

    /// Attribute `attr` of `d` (type `ty`) into `out`: how many elements cuDNN wrote (with an
    /// empty `out`, how many there are).
    fn get<T>(&self, d: Desc, attr: i32, ty: i32, out: &mut [T], what: &str) -> Result<usize> {
        let mut n = 0i64;
        let ptr = if out.is_empty() {
            std::ptr::null_mut()
        } else {
            out.as_mut_ptr() as *mut c_void
        };
        // SAFETY: `ptr` has room for `out.len()` elements of the attribute's type `ty`.
        self.c.check(
            unsafe { (self.c.get_attr)(d, attr, ty, out.len() as i64, &mut n, ptr) },
            what,
        )?;
        Ok(n.max(0) as usize)
    }

    fn finalize(&self, d: Desc, what: &str) -> Result<()> {
        // SAFETY: a descriptor made above with its attributes set.
        self.c.check(unsafe { (self.c.finalize)(d) }, what)
    }

    fn destroy_all(&mut self) {
        for d in self.all.drain(..).rev() {
            // SAFETY: each was made once by `new` and is destroyed once, here.
            unsafe { (self.c.destroy_desc)(d) };
        }
    }
}

/// A 5-D channels-last tensor `[1, c, t, h, w]` (memory `[t, h, w, c]`) of `E`.
fn tensor<E: Elem>(m: &mut Made, uid: i64, d: [usize; 5], what: &str) -> Result<Desc> {
    let [n, c, t, h, w] = d;
    let strides = [t * h * w * c, 1, h * w * c, w * c, c];
    let dims = [n, c, t, h, w];
    let i64s = |v: &[usize]| -> Result<Vec<i64>> {
        v.iter()
            .map(|&x| i64::try_from(x).map_err(|_| Error::Shape(format!("{what}: {d:?}"))))
            .collect()
    };
    let desc = m.make(g::TENSOR, what)?;
    m.set(
        desc,
        g::TENSOR_DATA_TYPE,
        g::TYPE_DATA_TYPE,
        &[E::CUDNN],
        what,
    )?;
    m.set(
        desc,
        g::TENSOR_DIMENSIONS,
        g::TYPE_INT64,
        &i64s(&dims)?,
        what,
    )?;
    m.set(
        desc,
        g::TENSOR_STRIDES,
        g::TYPE_INT64,
        &i64s(&strides)?,
        what,
    )?;
    m.set(desc, g::TENSOR_UNIQUE_ID, g::TYPE_INT64, &[uid], what)?;
    // Buffers start 256-byte aligned and views start at whole pixels: the alignment a pixel's
    // channels give, up to 16 bytes.
    let pixel = (c * std::mem::size_of::<E>()) as i64;
    let align = [16i64, 8, 4, 2]
        .into_iter()
        .find(|a| pixel % a == 0)
        .unwrap_or(1);
    m.set(
        desc,
        g::TENSOR_BYTE_ALIGNMENT,
        g::TYPE_INT64,
        &[align],
        what,
    )?;
    m.finalize(desc, what)?;
    Ok(desc)
}

/// How many of the heuristics' configurations are built and timed for a shape.
const CANDIDATES: usize = 6;

/// An engine with its knob settings: cuDNN's global engine index and (knob type, value) pairs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EngineId {
    pub index: i64,
    pub knobs: Vec<(i32, i64)>,
}

impl EngineId {
    /// As a tuned-plans record writes it: `index type:value …`.
    pub fn to_words(&self) -> String {
        let mut s = self.index.to_string();
        for (t, v) in &self.knobs {
            s.push_str(&format!(" {t}:{v}"));
        }
        s
    }

    pub fn from_words<'a>(mut w: impl Iterator<Item = &'a str>) -> Option<EngineId> {
        let index = w.next()?.parse().ok()?;
        let knobs = w
            .map(|kv| {
                let (t, v) = kv.split_once(':')?;
                Some((t.parse().ok()?, v.parse().ok()?))
            })
            .collect::<Option<_>>()?;
        Some(EngineId { index, knobs })
    }
}

/// A convolution shape cuDNN will run: its candidate execution plans with their workspace
/// sizes and engines (None where cuDNN would not say), and the one chosen.
pub struct ConvPlan {
    descs: Vec<Desc>,
    pub plans: Vec<(Desc, usize, Option<EngineId>)>,
    pub chosen: Option<usize>,
}

impl ConvPlan {
    /// The plan for `geo` on storage `E`: the first configuration of heuristic mode A (then the
    /// fallback list) that builds and keeps the arithmetic `E` promises — fp32 accumulation;
    /// for f32 storage no tensor cores (TF32) and no down-converted inputs. With `want`, that
    /// engine too when the heuristics did not offer it and it builds for this shape.
    pub fn new<E: Elem>(
        c: &Cudnn,
        handle: Handle,
        geo: &Geometry,
        want: Option<&EngineId>,
    ) -> Result<ConvPlan> {
        Self::made::<E>(c, handle, geo, want, true)
    }

    /// The plan for `geo` of engine `id` alone (an error when cuDNN will not build it for this
    /// shape or it would not keep `E`'s arithmetic).
    pub fn engine<E: Elem>(
        c: &Cudnn,
        handle: Handle,
        geo: &Geometry,
        id: &EngineId,
    ) -> Result<ConvPlan> {
        Self::made::<E>(c, handle, geo, Some(id), false)
    }

    fn made<E: Elem>(
        c: &Cudnn,
        handle: Handle,
        geo: &Geometry,
        want: Option<&EngineId>,
        heuristics: bool,
    ) -> Result<ConvPlan> {
        let mut m = Made { c, all: Vec::new() };
        match Self::build::<E>(&mut m, handle, geo, want, heuristics) {
            Ok(plans) => Ok(ConvPlan {
                descs: std::mem::take(&mut m.all),
                chosen: (plans.len() == 1).then_some(0),
                plans,
            }),
            Err(e) => {
                m.destroy_all();
                Err(e)
            }
        }
    }

    fn build<E: Elem>(
        m: &mut Made,
        handle: Handle,
        geo: &Geometry,
        want: Option<&EngineId>,
        heuristics: bool,
    ) -> Result<Vec<(Desc, usize, Option<EngineId>)>> {
        let x = geo.x;
        let o = geo.out();
        let what = format!(
            "a conv of [{}, {}, {}, {k}, {k}] over [{}, {}, {}, {}]",
            geo.cout,
            x.c,
            geo.kt,
            x.c,
            x.t,
            x.h,
            x.w,
            k = geo.ks
        );
        let xd = tensor::<E>(m, X, [1, x.c, x.t, x.h, x.w], &what)?;
        let wd = tensor::<E>(m, W, [geo.cout, x.c, geo.kt, geo.ks, geo.ks], &what)?;
        let yd = tensor::<E>(m, Y, [1, o.c, o.t, o.h, o.w], &what)?;

        let conv = m.make(g::CONVOLUTION, &what)?;
        let (st, ss, p) = (geo.st as i64, geo.ss as i64, geo.p as i64);
        m.set(
            conv,
            g::CONVOLUTION_COMP_TYPE,
            g::TYPE_DATA_TYPE,
            &[super::ffi::CUDNN_DATA_FLOAT],
            &what,
        )?;
        m.set(
            conv,
            g::CONVOLUTION_CONV_MODE,
            g::TYPE_CONVOLUTION_MODE,
            &[g::CROSS_CORRELATION],
            &what,
        )?;
        m.set(
            conv,
            g::CONVOLUTION_SPATIAL_DIMS,
            g::TYPE_INT64,
            &[3i64],
            &what,
        )?;
        m.set(
            conv,
            g::CONVOLUTION_DILATIONS,
            g::TYPE_INT64,
            &[1i64; 3],
            &what,
        )?;
        m.set(
            conv,
            g::CONVOLUTION_FILTER_STRIDES,
            g::TYPE_INT64,
            &[st, ss, ss],
            &what,
        )?;
        m.set(
            conv,
            g::CONVOLUTION_PRE_PADDINGS,
            g::TYPE_INT64,
            &[0, p, p],
            &what,
        )?;
        m.set(
            conv,
            g::CONVOLUTION_POST_PADDINGS,
            g::TYPE_INT64,
            &[0, p, p],
            &what,
        )?;
        m.finalize(conv, &what)?;

        let op = m.make(g::OPERATION_CONVOLUTION_FORWARD, &what)?;
        m.set(
            op,
            g::OPERATION_CONVOLUTION_FORWARD_X,
            g::TYPE_BACKEND_DESCRIPTOR,
            &[xd],
            &what,
        )?;
        m.set(
            op,
            g::OPERATION_CONVOLUTION_FORWARD_W,
            g::TYPE_BACKEND_DESCRIPTOR,
            &[wd],
            &what,
        )?;
        m.set(
            op,
            g::OPERATION_CONVOLUTION_FORWARD_Y,
            g::TYPE_BACKEND_DESCRIPTOR,
            &[yd],
            &what,
        )?;
        m.set(
            op,
            g::OPERATION_CONVOLUTION_FORWARD_CONV_DESC,
            g::TYPE_BACKEND_DESCRIPTOR,
            &[conv],
            &what,
        )?;
        m.set(
            op,
            g::OPERATION_CONVOLUTION_FORWARD_ALPHA,
            g::TYPE_FLOAT,
            &[1f32],
            &what,
        )?;
        m.set(
            op,
            g::OPERATION_CONVOLUTION_FORWARD_BETA,
            g::TYPE_FLOAT,
            &[0f32],
            &what,
        )?;
        m.finalize(op, &what)?;

        let graph = m.make(g::OPERATIONGRAPH, &what)?;
        m.set(
            graph,
            g::OPERATIONGRAPH_OPS,
            g::TYPE_BACKEND_DESCRIPTOR,
            &[op],
            &what,
        )?;
        m.set(
            graph,
            g::OPERATIONGRAPH_HANDLE,
            g::TYPE_HANDLE,
            &[handle],
            &what,
        )?;
        m.finalize(graph, &what)?;

        let mut skipped = 0;
        let mut plans = Vec::new();
        let modes: &[i32] = if heuristics {
            &[g::HEUR_MODE_A, g::HEUR_MODE_FALLBACK]
        } else {
            &[]
        };
        for &mode in modes {
            if !plans.is_empty() {
                break;
            }
            for cfg in configs(m, graph, mode, &what)? {
                if plans.len() == CANDIDATES {
                    break;
                }
                if !keeps_arithmetic::<E>(m, cfg).unwrap_or(false) {
                    skipped += 1;
                    continue;
                }
                // An engine that cannot take this shape refuses here; the next one is tried.
                if let Some((p, ws)) = plan_of(m, handle, cfg, &what)? {
                    plans.push((p, ws, engine_id(m, cfg).ok()));
                }
            }
        }
        if let Some(w) = want.filter(|&w| !plans.iter().any(|p| p.2.as_ref() == Some(w))) {
            // The engine the conv ran with at its other extents, asked for by name.
            let made = engine_cfg(m, graph, w, &what).and_then(|cfg| {
                match keeps_arithmetic::<E>(m, cfg)? {
                    true => plan_of(m, handle, cfg, &what),
                    false => Ok(None),
                }
            });
            match made {
                Ok(Some((p, ws))) => plans.push((p, ws, Some(w.clone()))),
                Ok(None) => tracing::debug!("cuDNN engine {} does not build for {what}", w.index),
                Err(e) => tracing::debug!("cuDNN engine {} for {what}: {e}", w.index),
            }
        }
        if !plans.is_empty() {
            return Ok(plans);
        }
        Err(Error::Device(format!(
            "cuDNN has no engine for {what} in {} storage ({skipped} set aside for their \
             arithmetic)",
            E::NAME
        )))
    }

    /// Run candidate `i` on these buffers (device addresses of the shape it was made for).
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        i: usize,
        c: &Cudnn,
        handle: Handle,
        x: u64,
        w: u64,
        y: u64,
        ws: u64,
    ) -> Result<()> {
        let mut m = Made { c, all: Vec::new() };
        let r = (|| {
            let pack = m.make(g::VARIANT_PACK, "variant pack")?;
            let ptrs = [x as *mut c_void, w as *mut c_void, y as *mut c_void];
            m.set(
                pack,
                g::VARIANT_PACK_UNIQUE_IDS,
                g::TYPE_INT64,
                &[X, W, Y],
                "variant pack",
            )?;
            m.set(
                pack,
                g::VARIANT_PACK_DATA_POINTERS,
                g::TYPE_VOID_PTR,
                &ptrs,
                "variant pack",
            )?;
            m.set(
                pack,
                g::VARIANT_PACK_WORKSPACE,
                g::TYPE_VOID_PTR,
                &[ws as *mut c_void],
                "variant pack",
            )?;
            m.finalize(pack, "variant pack")?;
            // SAFETY: the pack binds buffers of the plan's shapes and a workspace of its size.
            c.check(
                unsafe { (c.execute)(handle, self.plans[i].0, pack) },
                "convolution",
            )
        })();
        m.destroy_all();
        r
    }

    pub fn destroy(&mut self, c: &Cudnn) {
        Made {
            c,
            all: std::mem::take(&mut self.descs),
        }
        .destroy_all();
    }
}

/// The engine configurations heuristic `mode` ranks for `graph`, best first.
fn configs(m: &mut Made, graph: Desc, mode: i32, what: &str) -> Result<Vec<Desc>> {
    let heur = m.make(g::ENGINEHEUR, what)?;
    m.set(
        heur,
        g::ENGINEHEUR_OPERATION_GRAPH,
        g::TYPE_BACKEND_DESCRIPTOR,
        &[graph],
        what,
    )?;
    m.set(heur, g::ENGINEHEUR_MODE, g::TYPE_HEUR_MODE, &[mode], what)?;
    if m.finalize(heur, what).is_err() {
        return Ok(Vec::new());
    }
    let count = m.get::<Desc>(
        heur,
        g::ENGINEHEUR_RESULTS,
        g::TYPE_BACKEND_DESCRIPTOR,
        &mut [],
        "heuristics",
    )?;
    let mut cfgs = Vec::with_capacity(count.min(64));
    for _ in 0..cfgs.capacity() {
        cfgs.push(m.make(g::ENGINECFG, what)?);
    }
    let got = m.get(
        heur,
        g::ENGINEHEUR_RESULTS,
        g::TYPE_BACKEND_DESCRIPTOR,
        &mut cfgs,
        "heuristics",
    )?;
    cfgs.truncate(got.min(cfgs.len()));
    Ok(cfgs)
}

/// The execution plan of engine configuration `cfg` and its workspace size, or None when the
/// engine cannot take this shape.
fn plan_of(m: &mut Made, handle: Handle, cfg: Desc, what: &str) -> Result<Option<(Desc, usize)>> {
    let plan = m.make(g::EXECUTION_PLAN, what)?;
    m.set(
        plan,
        g::EXECUTION_PLAN_HANDLE,
        g::TYPE_HANDLE,
        &[handle],
        what,
    )?;
    m.set(
        plan,
        g::EXECUTION_PLAN_ENGINE_CONFIG,
        g::TYPE_BACKEND_DESCRIPTOR,
        &[cfg],
        what,
    )?;
    if m.finalize(plan, what).is_err() {
        return Ok(None);
    }
    let mut ws = [0i64];
    m.get(
        plan,
        g::EXECUTION_PLAN_WORKSPACE_SIZE,
        g::TYPE_INT64,
        &mut ws,
        "workspace size",
    )?;
    Ok(Some((plan, ws[0].max(0) as usize)))
}

/// The engine of configuration `cfg`.
fn engine_of(m: &mut Made, cfg: Desc) -> Result<Desc> {
    let mut engine = [m.make(g::ENGINE, "engine")?];
    m.get(
        cfg,
        g::ENGINECFG_ENGINE,
        g::TYPE_BACKEND_DESCRIPTOR,
        &mut engine,
        "engine",
    )?;
    Ok(engine[0])
}

/// Which engine configuration `cfg` is: its engine's global index and its knob choices.
fn engine_id(m: &mut Made, cfg: Desc) -> Result<EngineId> {
    let engine = engine_of(m, cfg)?;
    let mut index = [0i64];
    m.get(
        engine,
        g::ENGINE_GLOBAL_INDEX,
        g::TYPE_INT64,
        &mut index,
        "engine index",
    )?;
    let count = m.get::<Desc>(
        cfg,
        g::ENGINECFG_KNOB_CHOICES,
        g::TYPE_BACKEND_DESCRIPTOR,
        &mut [],
        "knob choices",
    )?;
    let mut choices = Vec::with_capacity(count.min(64));
    for _ in 0..choices.capacity() {
        choices.push(m.make(g::KNOB_CHOICE, "knob choice")?);
    }
    let got = m.get(
        cfg,
        g::ENGINECFG_KNOB_CHOICES,
        g::TYPE_BACKEND_DESCRIPTOR,
        &mut choices,
        "knob choices",
    )?;
    let mut knobs = Vec::new();
    for &k in &choices[..got.min(choices.len())] {
        let (mut t, mut v) = ([0i32], [0i64]);
        m.get(
            k,
            g::KNOB_CHOICE_KNOB_TYPE,
            g::TYPE_KNOB_TYPE,
            &mut t,
            "knob",
        )?;
        m.get(k, g::KNOB_CHOICE_KNOB_VALUE, g::TYPE_INT64, &mut v, "knob")?;
        knobs.push((t[0], v[0]));
    }
    knobs.sort_unstable();
    Ok(EngineId {
        index: index[0],
        knobs,
    })
}

/// Engine configuration `id` for `graph`, made by name (an error when cuDNN refuses it).
fn engine_cfg(m: &mut Made, graph: Desc, id: &EngineId, what: &str) -> Result<Desc> {
    let engine = m.make(g::ENGINE, what)?;
    m.set(
        engine,
        g::ENGINE_OPERATION_GRAPH,
        g::TYPE_BACKEND_DESCRIPTOR,
        &[graph],
        what,
    )?;
    m.set(
        engine,
        g::ENGINE_GLOBAL_INDEX,
        g::TYPE_INT64,
        &[id.index],
        what,
    )?;
    m.finalize(engine, what)?;
    let mut knobs = Vec::with_capacity(id.knobs.len());
    for &(t, v) in &id.knobs {
        let k = m.make(g::KNOB_CHOICE, what)?;
        m.set(k, g::KNOB_CHOICE_KNOB_TYPE, g::TYPE_KNOB_TYPE, &[t], what)?;
        m.set(k, g::KNOB_CHOICE_KNOB_VALUE, g::TYPE_INT64, &[v], what)?;
        m.finalize(k, what)?;
        knobs.push(k);
    }
    let cfg = m.make(g::ENGINECFG, what)?;
    m.set(
        cfg,
        g::ENGINECFG_ENGINE,
        g::TYPE_BACKEND_DESCRIPTOR,
        &[engine],
        what,
    )?;
    if !knobs.is_empty() {
        m.set(
            cfg,
            g::ENGINECFG_KNOB_CHOICES,
            g::TYPE_BACKEND_DESCRIPTOR,
            &knobs,
            what,
        )?;
    }
    m.finalize(cfg, what)?;
    Ok(cfg)
}

/// Whether an engine configuration computes as `E` promises (its numerical notes).
fn keeps_arithmetic<E: Elem>(m: &mut Made, cfg: Desc) -> Result<bool> {
    let engine = engine_of(m, cfg)?;
    let mut notes = [0i32; 16];
    let count = m.get(
        engine,
        g::ENGINE_NUMERICAL_NOTE,
        g::TYPE_NUMERICAL_NOTE,
        &mut notes,
        "numerical notes",
    )?;
    let notes = &notes[..count.min(16)];
    let forbidden: &[i32] = if E::STRICT {
        &[
            g::NOTE_TENSOR_CORE,
            g::NOTE_DOWN_CONVERT_INPUTS,
            g::NOTE_REDUCED_PRECISION_REDUCTION,
        ]
    } else {
        &[g::NOTE_REDUCED_PRECISION_REDUCTION]
    };
    Ok(!notes.iter().any(|n| forbidden.contains(n)))
}
