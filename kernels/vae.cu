// seedvae's own CUDA kernels for the VAE (crates/seedvae-exec, device `cuda`): the layers cuDNN
// and cuBLAS do not do. Compiled at first use by NVRTC for the GPU at hand and cached.
// Activations are `[C, T, H, W]` (one batch item), stored as `T` — float, or half with float
// arithmetic — and `plane` is H·W. Each kernel mirrors a function of
// crates/seedvae-exec/src/device/reference.rs; each is instantiated for both storage types
// (`name_f32`, `name_f16`) at the end of this file.

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

// Frames [t0, t0 + n) of every channel of `src` (T = src_t) into frames [d0, d0 + n) of `dst`
// (T = dst_t). Joins a conv's head to its input, keeps a conv's last frames, cuts and joins
// frame groups.
template <typename T> __device__ void copy_frames(const T* src, int src_t, int t0, T* dst, int dst_t,
                                       int d0, int n, int c, int plane) {
    i64 total = (i64)c * n * plane;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (i64)gridDim.x * blockDim.x) {
        i64 p = i % plane;
        i64 f = (i / plane) % n;
        i64 ch = i / ((i64)plane * n);
        dst[(ch * dst_t + d0 + f) * plane + p] = src[(ch * src_t + t0 + f) * plane + p];
    }
}

// `x` `[c, t, h, w]` into `y` `[c, t, h + 1, w + 1]` with a zero row below and a zero column to
// the right (the encoder's downsampling pad, spec §4.6).
template <typename T> __device__ void pad_right_bottom(const T* x, T* y, int ct, int h, int w) {
    i64 total = (i64)ct * (h + 1) * (w + 1);
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (i64)gridDim.x * blockDim.x) {
        int xx = (int)(i % (w + 1));
        int yy = (int)((i / (w + 1)) % (h + 1));
        i64 f = i / ((i64)(w + 1) * (h + 1));
        st(y, i, (yy < h && xx < w) ? ld(x, (f * h + yy) * w + xx) : 0.0f);
    }
}

// y[ch, ...] += b[ch] over `per` values a channel.
template <typename T> __device__ void add_bias(T* y, const T* b, int c, i64 per) {
    i64 total = (i64)c * per;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (i64)gridDim.x * blockDim.x) {
        st(y, i, ld(y, i) + ld(b, i / per));
    }
}

// a += b
template <typename T> __device__ void add_into(T* a, const T* b, i64 n) {
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (i64)gridDim.x * blockDim.x) {
        st(a, i, ld(a, i) + ld(b, i));
    }
}

// GroupNorm statistics (spec §4.2): per frame and group, the sum and the sum of squares of the
// group's channels over the frame, in f64, accumulated into `acc[(frame·groups + g)·2 + {0,1}]`
// (zeroed before). Block x: frame·groups + group; block y: a share of the group's values.
template <typename T> __device__ void gn_sums(const T* x, int t, int plane, int per, int groups,
                                   double* acc) {
    int tg = blockIdx.x;
    int ti = tg / groups, g = tg % groups;
    i64 n = (i64)per * plane;
    double s = 0.0, s2 = 0.0;
    for (i64 i = (i64)blockIdx.y * blockDim.x + threadIdx.x; i < n;
         i += (i64)gridDim.y * blockDim.x) {
        i64 ch = (i64)g * per + i / plane;
        double v = ld(x, (ch * t + ti) * plane + i % plane);
        s += v;
        s2 += v * v;
    }
    __shared__ double sh[2][256];
    sh[0][threadIdx.x] = s;
    sh[1][threadIdx.x] = s2;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if (threadIdx.x < k) {
            sh[0][threadIdx.x] += sh[0][threadIdx.x + k];
            sh[1][threadIdx.x] += sh[1][threadIdx.x + k];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        atomicAdd(&acc[2 * tg], sh[0][0]);
        atomicAdd(&acc[2 * tg + 1], sh[1][0]);
    }
}

// y = (x − mean) / sqrt(var + eps) · gamma + beta, then SiLU when `silu`.
template <typename T> __device__ void gn_apply(const T* x, T* y, const T* gamma,
                                    const T* beta, const double* acc, int c, int t, int plane,
                                    int per, int groups, float eps, int silu) {
    i64 total = (i64)c * t * plane;
    double count = (double)per * plane;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (i64)gridDim.x * blockDim.x) {
        i64 ti = (i / plane) % t;
        int ch = (int)(i / ((i64)plane * t));
        i64 k = 2 * (ti * groups + ch / per);
        double mean = acc[k] / count;
        double var = acc[k + 1] / count - mean * mean;
        double inv = 1.0 / sqrt(var + (double)eps);
        float v = (float)(((double)ld(x, i) - mean) * inv * (double)ld(gamma, ch) + (double)ld(beta, ch));
        st(y, i, silu ? v / (1.0f + expf(-v)) : v);
    }
}

// The upsampler's shuffle (spec §4.5): out[ch, f·z + sz, 2h + sx, 2w + sy] =
// u[((sx·2 + sy)·z + sz)·c + ch, f, h, w]; with `drop`, output frame 1 is left out.
template <typename T> __device__ void shuffle(const T* u, T* out, int c, int t, int h, int w, int z,
                                   int drop) {
    int ot = t * z - (drop ? 1 : 0);
    int oh = 2 * h, ow = 2 * w;
    i64 total = (i64)c * ot * oh * ow;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (i64)gridDim.x * blockDim.x) {
        int ox = (int)(i % ow);
        int oy = (int)((i / ow) % oh);
        int of = (int)((i / ((i64)ow * oh)) % ot);
        int ch = (int)(i / ((i64)ow * oh * ot));
        int full = (drop && of >= 1) ? of + 1 : of;  // the frame index before dropping
        int f = full / z, sz = full % z;
        int sx = oy & 1, sy = ox & 1;
        i64 k = ((i64)(sx * 2 + sy) * z + sz) * c + ch;
        st(out, i, ld(u, ((k * t + f) * h + (oy >> 1)) * w + (ox >> 1)));
    }
}

// q[ch·p + i] += b[ch] for a `[c][p]` matrix (a projection's bias).
template <typename T> __device__ void add_bias_rows(T* q, const T* b, int c, int p) {
    i64 total = (i64)c * p;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (i64)gridDim.x * blockDim.x) {
        st(q, i, ld(q, i) + ld(b, i / p));
    }
}

// Softmax of each of `cols` columns of `n` contiguous f32 scores (scaled by `scale` first),
// written as probabilities into `prob` (same layout, storage type); f64 sums. One block a column.
template <typename T> __device__ void softmax_columns(const float* s, T* prob, int n, int cols, float scale) {
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

// out[ch, ti, i] += o[ch·p + i] + b[ch]: the attention's output projection back into frame `ti`
// of `out` `[c, t, p]` (which holds the un-normalized input: the residual).
template <typename T> __device__ void attn_residual(T* out, const T* o, const T* b, int c, int t,
                                         int ti, int p) {
    i64 total = (i64)c * p;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (i64)gridDim.x * blockDim.x) {
        i64 ch = i / p;
        i64 k = (ch * t + ti) * p + i % p;
        st(out, k, ld(out, k) + ld(o, i) + ld(b, ch));
    }
}

// The kernels NVRTC exports, for f32 and f16 storage.
#define BOTH(NAME, PARAMS, ARGS)                                                 \
    extern "C" __global__ void NAME##_f32 PARAMS(float) { NAME<float> ARGS; }    \
    extern "C" __global__ void NAME##_f16 PARAMS(half_t) { NAME<half_t> ARGS; }

#define P_COPY(T) (const T* src, int src_t, int t0, T* dst, int dst_t, int d0, int n, int c, int plane)
BOTH(copy_frames, P_COPY, (src, src_t, t0, dst, dst_t, d0, n, c, plane))
#define P_PAD(T) (const T* x, T* y, int ct, int h, int w)
BOTH(pad_right_bottom, P_PAD, (x, y, ct, h, w))
#define P_BIAS(T) (T* y, const T* b, int c, i64 per)
BOTH(add_bias, P_BIAS, (y, b, c, per))
#define P_ADD(T) (T* a, const T* b, i64 n)
BOTH(add_into, P_ADD, (a, b, n))
#define P_SUMS(T) (const T* x, int t, int plane, int per, int groups, double* acc)
BOTH(gn_sums, P_SUMS, (x, t, plane, per, groups, acc))
#define P_GN(T) (const T* x, T* y, const T* gamma, const T* beta, const double* acc, int c, int t, int plane, int per, int groups, float eps, int silu)
BOTH(gn_apply, P_GN, (x, y, gamma, beta, acc, c, t, plane, per, groups, eps, silu))
#define P_SHUF(T) (const T* u, T* out, int c, int t, int h, int w, int z, int drop)
BOTH(shuffle, P_SHUF, (u, out, c, t, h, w, z, drop))
#define P_ROWS(T) (T* q, const T* b, int c, int p)
BOTH(add_bias_rows, P_ROWS, (q, b, c, p))
#define P_SOFT(T) (const float* s, T* prob, int n, int cols, float scale)
BOTH(softmax_columns, P_SOFT, (s, prob, n, cols, scale))
#define P_RES(T) (T* out, const T* o, const T* b, int c, int t, int ti, int p)
BOTH(attn_residual, P_RES, (out, o, b, c, t, ti, p))
