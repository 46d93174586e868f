// seedvae's own CUDA kernels for the VAE (crates/seedvae-exec, device `cuda`): the layers cuDNN
// and cuBLAS do not do. Compiled at first use by NVRTC for the GPU at hand and cached.
// Activations are f32 `[C, T, H, W]` (one batch item), as on the reference device; `plane` is
// H·W. Each kernel mirrors a function of crates/seedvae-exec/src/device/reference.rs.

typedef long long i64;

// Frames [t0, t0 + n) of every channel of `src` (T = src_t) into frames [d0, d0 + n) of `dst`
// (T = dst_t). Joins a conv's head to its input, keeps a conv's last frames, cuts and joins
// frame groups.
extern "C" __global__ void copy_frames(const float* src, int src_t, int t0, float* dst, int dst_t,
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
extern "C" __global__ void pad_right_bottom(const float* x, float* y, int ct, int h, int w) {
    i64 total = (i64)ct * (h + 1) * (w + 1);
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (i64)gridDim.x * blockDim.x) {
        int xx = (int)(i % (w + 1));
        int yy = (int)((i / (w + 1)) % (h + 1));
        i64 f = i / ((i64)(w + 1) * (h + 1));
        y[i] = (yy < h && xx < w) ? x[(f * h + yy) * w + xx] : 0.0f;
    }
}

// y[ch, ...] += b[ch] over `per` values a channel.
extern "C" __global__ void add_bias(float* y, const float* b, int c, i64 per) {
    i64 total = (i64)c * per;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (i64)gridDim.x * blockDim.x) {
        y[i] += b[i / per];
    }
}

// a += b
extern "C" __global__ void add_into(float* a, const float* b, i64 n) {
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (i64)gridDim.x * blockDim.x) {
        a[i] += b[i];
    }
}

// GroupNorm statistics (spec §4.2): per frame and group, the sum and the sum of squares of the
// group's channels over the frame, in f64, accumulated into `acc[(frame·groups + g)·2 + {0,1}]`
// (zeroed before). Block x: frame·groups + group; block y: a share of the group's values.
extern "C" __global__ void gn_sums(const float* x, int t, int plane, int per, int groups,
                                   double* acc) {
    int tg = blockIdx.x;
    int ti = tg / groups, g = tg % groups;
    i64 n = (i64)per * plane;
    double s = 0.0, s2 = 0.0;
    for (i64 i = (i64)blockIdx.y * blockDim.x + threadIdx.x; i < n;
         i += (i64)gridDim.y * blockDim.x) {
        i64 ch = (i64)g * per + i / plane;
        double v = x[(ch * t + ti) * plane + i % plane];
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
extern "C" __global__ void gn_apply(const float* x, float* y, const float* gamma,
                                    const float* beta, const double* acc, int c, int t, int plane,
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
        float v = (float)(((double)x[i] - mean) * inv * (double)gamma[ch] + (double)beta[ch]);
        y[i] = silu ? v / (1.0f + expf(-v)) : v;
    }
}

// The upsampler's shuffle (spec §4.5): out[ch, f·z + sz, 2h + sx, 2w + sy] =
// u[((sx·2 + sy)·z + sz)·c + ch, f, h, w]; with `drop`, output frame 1 is left out.
extern "C" __global__ void shuffle(const float* u, float* out, int c, int t, int h, int w, int z,
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
        out[i] = u[((k * t + f) * h + (oy >> 1)) * w + (ox >> 1)];
    }
}

// q[ch·p + i] += b[ch] for a `[c][p]` matrix (a projection's bias).
extern "C" __global__ void add_bias_rows(float* q, const float* b, int c, int p) {
    i64 total = (i64)c * p;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (i64)gridDim.x * blockDim.x) {
        q[i] += b[i / p];
    }
}

// Softmax of each of `cols` columns of `n` contiguous scores (scaled by `scale` first), in place;
// f64 sums. One block a column.
extern "C" __global__ void softmax_columns(float* s, int n, int cols, float scale) {
    int col = blockIdx.x;
    if (col >= cols) return;
    float* v = s + (i64)col * n;
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
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float e = expf(v[i] * scale - m);
        v[i] = e;
        sum += e;
    }
    shs[threadIdx.x] = sum;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if (threadIdx.x < k) shs[threadIdx.x] += shs[threadIdx.x + k];
        __syncthreads();
    }
    float inv = (float)(1.0 / shs[0]);
    for (int i = threadIdx.x; i < n; i += blockDim.x) v[i] *= inv;
}

// out[ch, ti, i] += o[ch·p + i] + b[ch]: the attention's output projection back into frame `ti`
// of `out` `[c, t, p]` (which holds the un-normalized input: the residual).
extern "C" __global__ void attn_residual(float* out, const float* o, const float* b, int c, int t,
                                         int ti, int p) {
    i64 total = (i64)c * p;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (i64)gridDim.x * blockDim.x) {
        i64 ch = i / p;
        out[(ch * t + ti) * p + i % p] += o[i] + b[ch];
    }
}
