#include "norm.h"

#include <cmath>
#include <vector>

#include "parallel.h"
#include "reduce.h"

namespace modelslice {

namespace {

int threads_for(int64_t work) { return work < (1 << 15) ? 1 : get_num_threads(); }

template <typename Body>
void for_range(int64_t count, int64_t work, Body&& body) {
  parallel_run(threads_for(work), [&](int t, int nt) {
    int64_t lo, hi;
    split_range(count, 1, t, nt, &lo, &hi);
    for (int64_t i = lo; i < hi; ++i) body(i);
  });
}

// Group (n, g)'s statistics, and channel ch's map y = (x - center) * scale + shift in the
// rounding every group-norm output uses (the forward pass here, and the convolutions an
// inference plan folds it into: conv.h, InputTransform).
struct GroupStats {
  double mu, r;
};

MS_INLINE GroupStats group_stats(const float* xg, int64_t count, float eps) {
  const Moments m = moments_of(xg, count);  // one read of the group from memory
  const double var = m.m2 / static_cast<double>(count);
  return {m.mean, 1.0 / std::sqrt((var > 0 ? var : 0.0) + eps)};
}

struct ChannelMap {
  float center, scale, shift;
};

MS_INLINE ChannelMap channel_map(const GroupStats& st, const float* gamma, const float* beta,
                                 int64_t ch) {
  // Centre first, then scale: folding the mean into the shift (x * a + (beta - a * mu))
  // cancels catastrophically when |mu| * rstd is large (an offset, or one value per group).
  // muf + (mu - muf) is the exact mean: the shift carries the rounding of muf.
  const double a = gamma ? gamma[ch] * st.r : st.r;
  const float muf = static_cast<float>(st.mu);
  return {muf, static_cast<float>(a),
          static_cast<float>((beta ? beta[ch] : 0.0) - a * (st.mu - muf))};
}

}  // namespace

void group_norm_forward(int64_t batch, int64_t channels, int64_t spatial, int64_t groups,
                        const float* x, const float* gamma, const float* beta, float eps, float* y,
                        float* mean, float* rstd, bool relu) {
  const int64_t cpg = channels / groups;
  const int64_t count = cpg * spatial;
  for_range(batch * groups, batch * channels * spatial, [&](int64_t ng) {
    run_isa([&]() MS_INLINE_LAMBDA {
      const int64_t n = ng / groups, g = ng % groups;
      const float* xg = x + (n * channels + g * cpg) * spatial;
      float* yg = y + (n * channels + g * cpg) * spatial;
      const GroupStats st = group_stats(xg, count, eps);
      mean[ng] = static_cast<float>(st.mu);
      rstd[ng] = static_cast<float>(st.r);
      for (int64_t c = 0; c < cpg; ++c) {
        const ChannelMap m = channel_map(st, gamma, beta, g * cpg + c);
        const float* xc = xg + c * spatial;
        float* yc = yg + c * spatial;
        if (relu) {
          for (int64_t i = 0; i < spatial; ++i) {
            const float v = (xc[i] - m.center) * m.scale + m.shift;
            yc[i] = v <= 0.0f ? 0.0f : v;  // NaN passes through, as in relu_forward
          }
        } else {
          for (int64_t i = 0; i < spatial; ++i) yc[i] = (xc[i] - m.center) * m.scale + m.shift;
        }
      }
    });
  });
}

namespace {

// Group norm statistics and channel maps of image n's groups [g0, g1).
void stats_of_groups(int64_t n, int64_t g0, int64_t g1, int64_t channels, int64_t spatial,
                     int64_t groups, const float* x, const float* gamma, const float* beta,
                     float eps, float* mean, float* rstd, float* center, float* scale,
                     float* shift) {
  const int64_t cpg = channels / groups;
  const int64_t count = cpg * spatial;
  run_isa([&]() MS_INLINE_LAMBDA {
    for (int64_t g = g0; g < g1; ++g) {
      const GroupStats st = group_stats(x + (n * channels + g * cpg) * spatial, count, eps);
      mean[n * groups + g] = static_cast<float>(st.mu);
      rstd[n * groups + g] = static_cast<float>(st.r);
      for (int64_t c = 0; c < cpg; ++c) {
        const int64_t ch = g * cpg + c;
        const ChannelMap m = channel_map(st, gamma, beta, ch);
        center[n * channels + ch] = m.center;
        scale[n * channels + ch] = m.scale;
        shift[n * channels + ch] = m.shift;
      }
    }
  });
}

}  // namespace

void group_norm_stats(int64_t batch, int64_t channels, int64_t spatial, int64_t groups,
                      const float* x, const float* gamma, const float* beta, float eps, float* mean,
                      float* rstd, float* center, float* scale, float* shift) {
  for_range(batch * groups, batch * channels * spatial, [&](int64_t ng) {
    stats_of_groups(ng / groups, ng % groups, ng % groups + 1, channels, spatial, groups, x, gamma,
                    beta, eps, mean, rstd, center, scale, shift);
  });
}

void group_norm_stats_groups(int64_t n, int64_t g0, int64_t g1, int64_t channels, int64_t spatial,
                             int64_t groups, const float* x, const float* gamma, const float* beta,
                             float eps, float* mean, float* rstd, float* center, float* scale,
                             float* shift) {
  stats_of_groups(n, g0, g1, channels, spatial, groups, x, gamma, beta, eps, mean, rstd, center,
                  scale, shift);
}

namespace {

// Gradient accessors, one (image, channel) row of spatial values at a time: row(nc, off, x)
// is image-channel nc's (n * channels + c), at offset off, whose input row is x. Plain, or
// masked by a fused ReLU's output, given (relu_out) or recomputed from x through the norm's
// map into a row of thread-local scratch (mapped).
struct PlainGrad {
  const float* g;
  MS_INLINE PlainGrad row(int64_t, int64_t off, const float*, int64_t) const { return {g + off}; }
  MS_INLINE float at(int64_t i) const { return g[i]; }
  MS_INLINE double sum(int64_t n) const { return sum_of(g, n); }
  MS_INLINE double dot_dev(const float* x, int64_t n, float mu) const {
    return sum_prod_dev(g, x, n, mu);
  }
};

struct MaskedGrad {
  const float* g;
  const float* y;
  MS_INLINE MaskedGrad row(int64_t, int64_t off, const float*, int64_t) const {
    return {g + off, y + off};
  }
  MS_INLINE float at(int64_t i) const { return relu_mask(g, y, i); }
  MS_INLINE double sum(int64_t n) const { return sum_of_masked(g, y, n); }
  MS_INLINE double dot_dev(const float* x, int64_t n, float mu) const {
    return sum_prod_dev_masked(g, y, x, n, mu);
  }
};

struct MappedGrad {
  const float* g;
  ReluMap map;
  // The row's ReLU output, in group_norm_forward's rounding (its relu branch).
  MS_INLINE MaskedGrad row(int64_t nc, int64_t off, const float* x, int64_t spatial) const {
    thread_local std::vector<float> out;
    if (out.size() < static_cast<size_t>(spatial)) out.resize(static_cast<size_t>(spatial));
    float* y = out.data();
    const float center = map.center[nc], scale = map.scale[nc], shift = map.shift[nc];
    for (int64_t i = 0; i < spatial; ++i) {
      const float v = (x[i] - center) * scale + shift;
      y[i] = v <= 0.0f ? 0.0f : v;
    }
    return {g + off, y};
  }
};

template <typename Grad>
void group_norm_backward_impl(int64_t batch, int64_t channels, int64_t spatial, int64_t groups,
                              const float* x, const Grad& gy, const float* gamma, const float* mean,
                              const float* rstd, float* gx, float* ggamma, float* gbeta,
                              bool gx_accumulate) {
  const int64_t cpg = channels / groups;
  const int64_t count = cpg * spatial;
  // With gx, the pass that computes it also keeps each (image, channel)'s sum of gy and of
  // gy * (x - mean), which are all ggamma and gbeta need: no second pass over x and gy.
  const bool affine = ggamma || gbeta;
  thread_local std::vector<double> sums;
  if (gx && affine) sums.resize(static_cast<size_t>(2 * batch * channels));
  double* const dsum = sums.data();
  if (gx) {
    for_range(batch * groups, batch * channels * spatial, [&](int64_t ng) {
      run_isa([&]() MS_INLINE_LAMBDA {
        const int64_t n = ng / groups, g = ng % groups;
        const int64_t base = (n * channels + g * cpg) * spatial;
        const float mu = mean[ng];
        const double r = rstd[ng];
        // dxhat = gy * gamma; gx = r * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
        double sdx = 0, sdxx = 0;
        for (int64_t c = 0; c < cpg; ++c) {
          const double gm = gamma ? gamma[g * cpg + c] : 1.0;
          const int64_t off = base + c * spatial;
          const auto row = gy.row(n * channels + g * cpg + c, off, x + off, spatial);
          const double s = row.sum(spatial), d = row.dot_dev(x + off, spatial, mu);
          sdx += gm * s;
          sdxx += gm * r * d;
          if (affine) {
            dsum[2 * (n * channels + g * cpg + c)] = s;
            dsum[2 * (n * channels + g * cpg + c) + 1] = d;
          }
        }
        const double mdx = sdx / static_cast<double>(count),
                     mdxx = sdxx / static_cast<double>(count);
        // Inside the bracket first, then times r: with one value per group gamma * gy and
        // mean(dxhat) are the same float and cancel exactly.
        const float mdxf = static_cast<float>(mdx), slope = static_cast<float>(r * mdxx);
        const float rf = static_cast<float>(r);
        for (int64_t c = 0; c < cpg; ++c) {
          const float gm = gamma ? gamma[g * cpg + c] : 1.0f;
          const int64_t off = base + c * spatial;
          const float* xc = x + off;
          float* oc = gx + off;
          const auto row = gy.row(n * channels + g * cpg + c, off, xc, spatial);
          if (gx_accumulate)
            for (int64_t i = 0; i < spatial; ++i)
              oc[i] += rf * (row.at(i) * gm - mdxf - (xc[i] - mu) * slope);
          else
            for (int64_t i = 0; i < spatial; ++i)
              oc[i] = rf * (row.at(i) * gm - mdxf - (xc[i] - mu) * slope);
        }
      });
    });
  }
  if (affine) {
    for_range(channels, batch * channels * (gx ? 1 : spatial), [&](int64_t c) {
      run_isa([&]() MS_INLINE_LAMBDA {
        const int64_t g = c / cpg;
        double sg = 0, sb = 0;
        for (int64_t n = 0; n < batch; ++n) {
          const int64_t off = (n * channels + c) * spatial;
          if (gx) {
            sg += rstd[n * groups + g] * dsum[2 * (n * channels + c) + 1];
            sb += dsum[2 * (n * channels + c)];
            continue;
          }
          const auto row = gy.row(n * channels + c, off, x + off, spatial);
          sg += rstd[n * groups + g] * row.dot_dev(x + off, spatial, mean[n * groups + g]);
          sb += row.sum(spatial);
        }
        if (ggamma) ggamma[c] += static_cast<float>(sg);
        if (gbeta) gbeta[c] += static_cast<float>(sb);
      });
    });
  }
}

}  // namespace

void group_norm_backward(int64_t batch, int64_t channels, int64_t spatial, int64_t groups,
                         const float* x, const float* gy, const float* gamma, const float* mean,
                         const float* rstd, float* gx, float* ggamma, float* gbeta,
                         const float* relu_out, bool gx_accumulate, const ReluMap* relu_map) {
  if (relu_map && !relu_out)
    group_norm_backward_impl(batch, channels, spatial, groups, x, MappedGrad{gy, *relu_map}, gamma,
                             mean, rstd, gx, ggamma, gbeta, gx_accumulate);
  else if (relu_out)
    group_norm_backward_impl(batch, channels, spatial, groups, x, MaskedGrad{gy, relu_out}, gamma,
                             mean, rstd, gx, ggamma, gbeta, gx_accumulate);
  else
    group_norm_backward_impl(batch, channels, spatial, groups, x, PlainGrad{gy}, gamma, mean, rstd,
                             gx, ggamma, gbeta, gx_accumulate);
}

void channel_moments(int64_t batch, int64_t channels, int64_t spatial, const float* x, float* mean,
                     float* var) {
  const double count = static_cast<double>(batch * spatial);
  for_range(channels, batch * channels * spatial, [&](int64_t c) {
    run_isa([&]() MS_INLINE_LAMBDA {
      double sum = 0;
      for (int64_t n = 0; n < batch; ++n) sum += sum_of(x + (n * channels + c) * spatial, spatial);
      const double mu = sum / count;
      const float mu0 = static_cast<float>(mu);
      const double off = mu - mu0;
      double sq = 0;
      for (int64_t n = 0; n < batch; ++n)
        sq += sum_sq_dev(x + (n * channels + c) * spatial, spatial, mu0);
      const double v = sq / count - off * off;
      mean[c] = static_cast<float>(mu);
      var[c] = static_cast<float>(v > 0 ? v : 0.0);
    });
  });
}

void channel_affine(int64_t batch, int64_t channels, int64_t spatial, const float* x,
                    const float* scale, const float* shift, float* y) {
  for_range(batch * channels, batch * channels * spatial, [&](int64_t p) {
    run_isa([&]() MS_INLINE_LAMBDA {
      const int64_t c = p % channels;
      const float a = scale[c], b = shift[c];
      const float* xp = x + p * spatial;
      float* yp = y + p * spatial;
      for (int64_t i = 0; i < spatial; ++i) yp[i] = xp[i] * a + b;
    });
  });
}

void batch_norm_backward(int64_t batch, int64_t channels, int64_t spatial, const float* x,
                         const float* gy, const float* mean, const float* rstd, const float* gamma,
                         bool training, float* gx, float* ggamma, float* gbeta) {
  const double count = static_cast<double>(batch * spatial);
  for_range(channels, batch * channels * spatial, [&](int64_t c) {
    run_isa([&]() MS_INLINE_LAMBDA {
      const float mu = mean[c];
      const double r = rstd[c];
      const double gm = gamma ? gamma[c] : 1.0;
      double sg = 0, sgx = 0;
      for (int64_t n = 0; n < batch; ++n) {
        const float* xc = x + (n * channels + c) * spatial;
        const float* gc = gy + (n * channels + c) * spatial;
        sg += sum_of(gc, spatial);
        sgx += r * sum_prod_dev(gc, xc, spatial, mu);
      }
      if (ggamma) ggamma[c] += static_cast<float>(sgx);
      if (gbeta) gbeta[c] += static_cast<float>(sg);
      if (!gx) return;
      const double mg = training ? sg / count : 0.0, mgx = training ? sgx / count : 0.0;
      const float scale = static_cast<float>(gm * r), mgf = static_cast<float>(mg),
                  slope = static_cast<float>(r * mgx);
      for (int64_t n = 0; n < batch; ++n) {
        const float* xc = x + (n * channels + c) * spatial;
        const float* gc = gy + (n * channels + c) * spatial;
        float* oc = gx + (n * channels + c) * spatial;
        for (int64_t i = 0; i < spatial; ++i) oc[i] += scale * (gc[i] - mgf - (xc[i] - mu) * slope);
      }
    });
  });
}

}  // namespace modelslice
