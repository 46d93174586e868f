// seedvae's own CUDA kernels for the VAE (crates/seedvae-exec, device `cuda`): the layers cuDNN
// and cuBLAS do not do. Compiled at first use by NVRTC for the GPU at hand and cached.
// Activations are channels-last `[T, H, W, C]` (one batch item: a frame is one contiguous
// block, a pixel's channels are adjacent), stored as `T` — float, or half with float
// arithmetic. Each kernel mirrors a function of crates/seedvae-exec/src/device/reference.rs
// (which keeps `[C, T, H, W]`); each is instantiated for both storage types (`name_f32`,
// `name_f16`) at the end of this file.

typedef long long i64;

// IEEE half as its bits, converted with the PTX instructions (no header needed by NVRTC).
struct half_t {
    unsigned short bits;
};

__device__ __forceinline__ float ld(const float* p, i64 i) { return p[i]; }
__device__ __forceinline__ float ld(const half_t* p, i64 i) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(p[i].bits));
    return f;
}
__device__ __forceinline__ void st(float* p, i64 i, float v) { p[i] = v; }
__device__ __forceinline__ void st(half_t* p, i64 i, float v) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
    p[i].bits = h;
}

// Eight consecutive values of T as one access (16 bytes of half, 32 of float): the
// memory-bound kernels below read and write whole pixels' channels this way. Callers keep the
// address a multiple of 8 values (channels a multiple of 8; buffers 256-byte aligned).
template <typename T> struct V8;
template <> struct V8<half_t> {
    uint4 raw;
    __device__ __forceinline__ void load(const half_t* p) { raw = *(const uint4*)p; }
    __device__ __forceinline__ void store(half_t* p) const { *(uint4*)p = raw; }
    __device__ __forceinline__ float get(int j) const {
        unsigned w = (&raw.x)[j >> 1];
        unsigned short h = (unsigned short)((j & 1) ? (w >> 16) : (w & 0xffffu));
        float f;
        asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
        return f;
    }
    __device__ __forceinline__ void set(int j, float v) {
        unsigned short h;
        asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
        unsigned* w = &(&raw.x)[j >> 1];
        *w = (j & 1) ? ((*w & 0xffffu) | ((unsigned)h << 16)) : ((*w & 0xffff0000u) | h);
    }
};
template <> struct V8<float> {
    float4 a, b;
    __device__ __forceinline__ void load(const float* p) {
        a = ((const float4*)p)[0];
        b = ((const float4*)p)[1];
    }
    __device__ __forceinline__ void store(float* p) const {
        ((float4*)p)[0] = a;
        ((float4*)p)[1] = b;
    }
    __device__ __forceinline__ float get(int j) const { return j < 4 ? (&a.x)[j] : (&b.x)[j - 4]; }
    __device__ __forceinline__ void set(int j, float v) {
        if (j < 4) (&a.x)[j] = v; else (&b.x)[j - 4] = v;
    }
};

// A grid-stride loop. 32-bit: the device keeps every tensor under 2^31 values (cuDNN's limit,
// so index + stride stays under 2^32), and 64-bit division costs several times more.
typedef unsigned int u32;
#define GRID_STRIDE(i, n)                                                          \
    for (u32 i = blockIdx.x * blockDim.x + threadIdx.x; i < (u32)(n);             \
         i += gridDim.x * blockDim.x)

// Host values `[C, TP]` (f32; TP = frames × pixels) into `[TP, C]` storage: an upload.
template <typename T> __device__ void to_channels_last(const float* src, T* dst, int c, i64 tp) {
    GRID_STRIDE(i, (i64)c * tp) {
        u32 ch = i % (u32)c;
        st(dst, i, src[(i64)ch * tp + i / (u32)c]);
    }
}

// `[TP, C]` storage into `[C, TP]` f32 values: a download.
template <typename T> __device__ void to_channels_first(const T* src, float* dst, int c, i64 tp) {
    GRID_STRIDE(i, (i64)c * tp) {
        u32 q = i % (u32)tp;
        dst[i] = ld(src, (i64)q * c + i / (u32)tp);
    }
}

// The first `n` of `cs` channels of every pixel (the encoder's posterior mean).
template <typename T> __device__ void take_channels(const T* src, T* dst, int cs, int n, i64 px) {
    GRID_STRIDE(i, (i64)n * px) {
        dst[i] = src[(i64)(i / (u32)n) * cs + i % (u32)n];
    }
}

// The first `n` of `cs` channels of every pixel plus a bias: a conv whose output channels were
// padded to a multiple of 8 (the tensor cores' alignment), cut back.
template <typename T> __device__ void take_channels_bias(const T* src, T* dst, const T* b, int cs,
                                                         int n, i64 px) {
    GRID_STRIDE(i, (i64)n * px) {
        u32 ch = i % (u32)n;
        st(dst, i, ld(src, (i64)(i / (u32)n) * cs + ch) + ld(b, ch));
    }
}

// Every pixel's `n` channels followed by zeros up to `cs`: a conv input whose channels are
// padded to a multiple of 8 (the encoder's RGB input), which cuDNN's tensor-core kernels need.
template <typename T> __device__ void pad_channels(const T* src, T* dst, int n, int cs, i64 px) {
    GRID_STRIDE(i, (i64)cs * px) {
        u32 ch = i % (u32)cs;
        st(dst, i, ch < (u32)n ? ld(src, (i64)(i / (u32)cs) * n + ch) : 0.0f);
    }
}

// `x` `[f, h, w, c]` into `y` `[f, h + 1, w + 1, c]` with a zero row below and a zero column to
// the right (the encoder's downsampling pad, spec §4.6).
template <typename T> __device__ void pad_right_bottom(const T* x, T* y, int f, int h, int w, int c) {
    GRID_STRIDE(i, (i64)f * (h + 1) * (w + 1) * c) {
        u32 ch = i % (u32)c;
        u32 px = i / (u32)c;
        int xx = (int)(px % (u32)(w + 1));
        int yy = (int)((px / (u32)(w + 1)) % (u32)(h + 1));
        i64 fr = px / (u32)((w + 1) * (h + 1));
        st(y, i, (yy < h && xx < w) ? ld(x, ((fr * h + yy) * w + xx) * c + ch) : 0.0f);
    }
}

// out[i] += o[i] + b[channel]: the attention's output projection and its residual.
template <typename T> __device__ void add_bias_into(T* out, const T* o, const T* b, int c, i64 n) {
    GRID_STRIDE(i, n) { st(out, i, ld(out, i) + ld(o, i) + ld(b, i % (u32)c)); }
}

// Per frame and channel, GroupNorm folded with its affine: y = x·a + b, a = γ/σ, b = β − μ·a.
template <typename T> __device__ void gn_finish(const T* x, const double* acc, const T* gamma,
                                                const T* beta, float* ab, int t, int plane,
                                                int c, int per, float eps) {
    GRID_STRIDE(i, (i64)t * c) {
        int ch = (int)(i % (u32)c);
        i64 f = i / (u32)c;
        int groups = c / per;
        const double* s = acc + (f * groups + ch / per) * 2;
        double n = (double)per * plane;
        double m = s[0] / n;
        double var = fmax(s[1] / n - m * m, 0.0);
        double mean = (double)ld(x, f * plane * c + (ch / per) * per) + m;
        double a = (double)ld(gamma, ch) / sqrt(var + (double)eps);
        ab[2 * i] = (float)a;
        ab[2 * i + 1] = (float)((double)ld(beta, ch) - mean * a);
    }
}

// The upsampler's shuffle (spec §4.5): out[f·z + sz, 2y + sx, 2x + sy, ch] =
// u[f, y, x, ((sx·2 + sy)·z + sz)·c + ch]; with `drop`, output frame 1 is left out. Eight
// channels a thread (c a multiple of 8).
template <typename T> __device__ void shuffle(const T* u, T* out, int c, int t, int h, int w,
                                              int z, int drop) {
    int ot = t * z - (drop ? 1 : 0);
    int oh = 2 * h, ow = 2 * w;
    GRID_STRIDE(i, (i64)ot * oh * ow * c / 8) {
        u32 at = i * 8;
        u32 ch = at % (u32)c;
        u32 px = at / (u32)c;
        int ox = (int)(px % (u32)ow);
        int oy = (int)((px / (u32)ow) % (u32)oh);
        int of = (int)(px / (u32)(ow * oh));
        int full = (drop && of >= 1) ? of + 1 : of;  // the frame index before dropping
        int f = full / z, sz = full % z;
        int k = ((oy & 1) * 2 + (ox & 1)) * z + sz;
        V8<T> v;
        v.load(u + (((i64)f * h + (oy >> 1)) * w + (ox >> 1)) * (4 * z * c) + (i64)k * c + ch);
        v.store(out + at);
    }
}

// Softmax of each of `cols` columns of `n` contiguous f32 scores (scaled by `scale` first),
// written as probabilities into `prob` (same layout, storage type); f64 sums. One block a column.
template <typename T> __device__ void softmax_columns(const float* s, T* prob, int n, int cols,
                                                      float scale) {
    int col = blockIdx.x;
    if (col >= cols) return;
    const float* v = s + (i64)col * n;
    __shared__ float shm[256];
    __shared__ double shs[256];
    float m = -3.402823466e38f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) m = fmaxf(m, v[i] * scale);
    shm[threadIdx.x] = m;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if (threadIdx.x < k) shm[threadIdx.x] = fmaxf(shm[threadIdx.x], shm[threadIdx.x + k]);
        __syncthreads();
    }
    m = shm[0];
    double sum = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) sum += expf(v[i] * scale - m);
    shs[threadIdx.x] = sum;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if (threadIdx.x < k) shs[threadIdx.x] += shs[threadIdx.x + k];
        __syncthreads();
    }
    float inv = (float)(1.0 / shs[0]);
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        st(prob, (i64)col * n + i, expf(v[i] * scale - m) * inv);
}

// The memory-bound kernels, each thread eight values: the channels (and so `n`) multiples of 8.

// y[i] += b[channel]: a conv's or a projection's bias.
template <typename T> __device__ void add_bias_v8(T* y, const T* b, int c, i64 n) {
    GRID_STRIDE(i, n / 8) {
        u32 at = i * 8, ch = at % (u32)c;
        V8<T> v, bb;
        v.load(y + at);
        bb.load(b + ch);
#pragma unroll
        for (int j = 0; j < 8; j++) v.set(j, v.get(j) + bb.get(j));
        v.store(y + at);
    }
}

// a += b (the residual)
template <typename T> __device__ void add_into_v8(T* a, const T* b, i64 n) {
    GRID_STRIDE(i, n / 8) {
        u32 at = i * 8;
        V8<T> u, v;
        u.load(a + at);
        v.load(b + at);
#pragma unroll
        for (int j = 0; j < 8; j++) u.set(j, u.get(j) + v.get(j));
        u.store(a + at);
    }
}

// GroupNorm statistics (spec §4.2) of frame blockIdx.y: per group, the sum and the sum of
// squares of (value − pivot) over the block's pixels, added into `acc[(frame·groups + g)·2 +
// {0,1}]` (f64, zeroed before). The pivot is the group's first value in the frame, so the sums
// stay small where a group's mean is large next to its spread (f32 sums would cancel). A
// thread for each 8 channels of a pixel, `lanes` pixels at once (blockDim = lanes · c/8); sums
// kept per channel and added up by group at the end.
template <typename T> __device__ void gn_sums_v8(const T* x, int plane, int c, int per, int lanes,
                                                 int pixels, double* acc) {
    extern __shared__ double sh[];  // [2][groups]
    int groups = c / per;
    int tid = threadIdx.x;
    for (int k = tid; k < 2 * groups; k += blockDim.x) sh[k] = 0.0;
    __syncthreads();
    int tpp = c / 8;
    int lane = tid / tpp, ch0 = (tid % tpp) * 8;
    const T* frame = x + (i64)blockIdx.y * plane * c;
    float pivot[8], s[8], s2[8];
#pragma unroll
    for (int j = 0; j < 8; j++) {
        pivot[j] = ld(frame, ((ch0 + j) / per) * per);
        s[j] = 0.0f;
        s2[j] = 0.0f;
    }
    int p0 = blockIdx.x * pixels;
    int p1 = min(p0 + pixels, plane);
    if (lane < lanes) {
        for (int px = p0 + lane; px < p1; px += lanes) {
            V8<T> v;
            v.load(frame + (i64)px * c + ch0);
#pragma unroll
            for (int j = 0; j < 8; j++) {
                float d = v.get(j) - pivot[j];
                s[j] += d;
                s2[j] += d * d;
            }
        }
        // The 8 channels' sums by group (a group's channels are adjacent): one shared add
        // per group the thread touches.
        double gs = 0.0, gs2 = 0.0;
#pragma unroll
        for (int j = 0; j < 8; j++) {
            gs += s[j];
            gs2 += s2[j];
            if (j == 7 || (ch0 + j + 1) % per == 0) {
                int gi = (ch0 + j) / per;
                atomicAdd(&sh[2 * gi], gs);
                atomicAdd(&sh[2 * gi + 1], gs2);
                gs = 0.0;
                gs2 = 0.0;
            }
        }
    }
    __syncthreads();
    for (int k = tid; k < 2 * groups; k += blockDim.x)
        atomicAdd(&acc[(i64)blockIdx.y * groups * 2 + k], sh[k]);
}

// y = x·a + b per frame and channel (`ab` from gn_finish), then SiLU when `silu`.
template <typename T> __device__ void gn_apply_v8(const T* x, T* y, const float* ab, int c,
                                                  i64 frame, i64 n, int silu) {
    GRID_STRIDE(i, n / 8) {
        u32 at = i * 8, ch = at % (u32)c;
        const float2* k = (const float2*)ab + (at / (u32)frame) * (u32)c + ch;
        V8<T> v;
        v.load(x + at);
#pragma unroll
        for (int j = 0; j < 8; j++) {
            float2 q = k[j];
            float u = v.get(j) * q.x + q.y;
            v.set(j, silu ? u / (1.0f + expf(-u)) : u);
        }
        v.store(y + at);
    }
}

// How many of `n` stored values differ, bit for bit, between `a` and `b`, added into `out`:
// a conv engine's probe (the same engine over another extent must give the same bits).
template <typename T> __device__ void count_unequal(const T* a, const T* b, i64 n,
                                                    unsigned long long* out) {
    const unsigned short* x = (const unsigned short*)a;
    const unsigned short* y = (const unsigned short*)b;
    unsigned long long k = 0;
    GRID_STRIDE(i, n * (i64)(sizeof(T) / 2)) k += x[i] != y[i];
    if (k) atomicAdd(out, k);
}

// The kernels NVRTC exports, for f32 and f16 storage.
#define BOTH(NAME, PARAMS, ARGS)                                                 \
    extern "C" __global__ void NAME##_f32 PARAMS(float) { NAME<float> ARGS; }    \
    extern "C" __global__ void NAME##_f16 PARAMS(half_t) { NAME<half_t> ARGS; }

#define P_CL(T) (const float* src, T* dst, int c, i64 tp)
BOTH(to_channels_last, P_CL, (src, dst, c, tp))
#define P_CF(T) (const T* src, float* dst, int c, i64 tp)
BOTH(to_channels_first, P_CF, (src, dst, c, tp))
#define P_TAKE(T) (const T* src, T* dst, int cs, int n, i64 px)
BOTH(take_channels, P_TAKE, (src, dst, cs, n, px))
#define P_TAKEB(T) (const T* src, T* dst, const T* b, int cs, int n, i64 px)
BOTH(take_channels_bias, P_TAKEB, (src, dst, b, cs, n, px))
#define P_PADC(T) (const T* src, T* dst, int n, int cs, i64 px)
BOTH(pad_channels, P_PADC, (src, dst, n, cs, px))
#define P_PAD(T) (const T* x, T* y, int f, int h, int w, int c)
BOTH(pad_right_bottom, P_PAD, (x, y, f, h, w, c))
#define P_BIAS(T) (T* y, const T* b, int c, i64 n)
#define P_ADD(T) (T* a, const T* b, i64 n)
#define P_BINTO(T) (T* out, const T* o, const T* b, int c, i64 n)
BOTH(add_bias_into, P_BINTO, (out, o, b, c, n))
#define P_SUMS(T) (const T* x, int plane, int c, int per, int lanes, int pixels, double* acc)
#define P_FIN(T) (const T* x, const double* acc, const T* gamma, const T* beta, float* ab, int t, int plane, int c, int per, float eps)
BOTH(gn_finish, P_FIN, (x, acc, gamma, beta, ab, t, plane, c, per, eps))
#define P_GN(T) (const T* x, T* y, const float* ab, int c, i64 frame, i64 n, int silu)
BOTH(add_bias_v8, P_BIAS, (y, b, c, n))
BOTH(add_into_v8, P_ADD, (a, b, n))
BOTH(gn_sums_v8, P_SUMS, (x, plane, c, per, lanes, pixels, acc))
BOTH(gn_apply_v8, P_GN, (x, y, ab, c, frame, n, silu))
#define P_SHUF(T) (const T* u, T* out, int c, int t, int h, int w, int z, int drop)
BOTH(shuffle, P_SHUF, (u, out, c, t, h, w, z, drop))
#define P_SOFT(T) (const float* s, T* prob, int n, int cols, float scale)
BOTH(softmax_columns, P_SOFT, (s, prob, n, cols, scale))
#define P_UNEQ(T) (const T* a, const T* b, i64 n, unsigned long long* out)
BOTH(count_unequal, P_UNEQ, (a, b, n, out))
