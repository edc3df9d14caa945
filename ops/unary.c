/* ops/unary.c: the elementwise unary ops (relu, leaky_relu, elu, tanh,
 * sigmoid, softplus, exp, log, abs, square, sqrt, scale), f32 and f64, with
 * their backward passes and graph constructors.
 *
 * Each op is one line of UNARY_OPS: its forward expression in x and its
 * backward expression in x, y (the forward output) and dy. UNARY_KERNELS
 * turns a line into OpenMP loops for one element type; <tgmath.h> picks the
 * float or double math function from the operand type. */
#include <tgmath.h>

#include "elem.h"

/* The attributes a unary op may read (absent ones keep their defaults). */
typedef struct unary_params {
    double alpha, scale, shift;
} unary_params;

/* y[i] = f(x[i]) over n elements; x, y are f32 or f64 arrays. */
typedef void (*unary_fwd_fn)(const void *x, void *y, int64_t n, const unary_params *p);
/* dx[i] = dy[i] * f'(x[i]) (f' may use y[i] = f(x[i])). */
typedef void (*unary_bwd_fn)(const void *x, const void *y, const void *dy, void *dx, int64_t n,
                             const unary_params *p);

/* Forward and backward loops of op NAME for element type TY. Inside FWD and
 * BWD, T is the element type and alpha, sc, sh are the attributes. */
#define UNARY_KERNELS(NAME, TY, SFX, FWD, BWD)                                                  \
    static void NAME##_fwd_##SFX(const void *xv, void *yv, int64_t n, const unary_params *p)   \
    {                                                                                          \
        typedef TY T;                                                                          \
        const T *xs = xv;                                                                      \
        T *ys = yv;                                                                            \
        const T alpha = (T)p->alpha, sc = (T)p->scale, sh = (T)p->shift;                       \
        (void)alpha, (void)sc, (void)sh;                                                       \
        _Pragma("omp parallel for schedule(static) if(mg_elem_par(n))")                       \
        for (int64_t i = 0; i < n; i++) {                                                      \
            const T x = xs[i];                                                                 \
            ys[i] = (FWD);                                                                     \
        }                                                                                      \
    }                                                                                          \
    static void NAME##_bwd_##SFX(const void *xv, const void *yv, const void *dyv, void *dxv,   \
                                 int64_t n, const unary_params *p)                             \
    {                                                                                          \
        typedef TY T;                                                                          \
        const T *xs = xv, *ys = yv, *dys = dyv;                                                \
        T *dxs = dxv;                                                                          \
        const T alpha = (T)p->alpha, sc = (T)p->scale, sh = (T)p->shift;                       \
        (void)alpha, (void)sc, (void)sh;                                                       \
        _Pragma("omp parallel for schedule(static) if(mg_elem_par(n))")                       \
        for (int64_t i = 0; i < n; i++) {                                                      \
            const T x = xs[i], y = ys[i], dy = dys[i];                                         \
            (void)x, (void)y;                                                                  \
            dxs[i] = (BWD);                                                                    \
        }                                                                                      \
    }

static const char *const attrs_alpha[] = {"alpha", NULL};
static const char *const attrs_scale[] = {"scale", "shift", NULL};

/* X(name, summary, accepted attrs, flags, default alpha, forward, backward).
 * elu clamps x to <= 0 before exp so the branch not taken cannot overflow;
 * softplus is max(x, 0) + log1p(exp(-|x|)), exact for large |x|. */
#define UNARY_OPS(X)                                                                          \
    X(relu, "max(x, 0)", NULL, MG_OP_KINKS, 0.0,                                              \
      x > 0 ? x : (T)0, x > 0 ? dy : (T)0)                                                    \
    X(leaky_relu, "x if x > 0 else alpha*x", attrs_alpha, MG_OP_KINKS, 0.01,                  \
      x > 0 ? x : alpha * x, x > 0 ? dy : alpha * dy)                                         \
    X(elu, "x if x > 0 else alpha*(exp(x)-1)", attrs_alpha, 0, 1.0,                           \
      x > 0 ? x : alpha * expm1(x < 0 ? x : (T)0),                                            \
      x > 0 ? dy : dy * alpha * exp(x < 0 ? x : (T)0))                                        \
    X(tanh, "tanh(x)", NULL, 0, 0.0, tanh(x), dy * ((T)1 - y * y))                            \
    X(sigmoid, "1/(1+exp(-x))", NULL, 0, 0.0,                                                 \
      (T)1 / ((T)1 + exp(-x)), dy * y * ((T)1 - y))                                           \
    X(softplus, "log(1+exp(x))", NULL, 0, 0.0,                                                \
      fmax(x, (T)0) + log1p(exp(-fabs(x))), dy / ((T)1 + exp(-x)))                            \
    X(exp, "exp(x)", NULL, 0, 0.0, exp(x), dy * y)                                            \
    X(log, "natural log", NULL, 0, 0.0, log(x), dy / x)                                       \
    X(abs, "|x|", NULL, MG_OP_KINKS, 0.0,                                                     \
      fabs(x), x > 0 ? dy : (x < 0 ? -dy : (T)0))                                             \
    X(square, "x*x", NULL, 0, 0.0, x * x, (T)2 * x * dy)                                      \
    X(sqrt, "square root", NULL, 0, 0.0, sqrt(x), dy * (T)0.5 / y)                            \
    X(scale, "scale*x + shift", attrs_scale, 0, 0.0, sc * x + sh, sc * dy)

#define UNARY_INSTANTIATE(NAME, SUM, ATTRS, FLAGS, ALPHA, FWD, BWD)                            \
    UNARY_KERNELS(NAME, float, f32, FWD, BWD)                                                  \
    UNARY_KERNELS(NAME, double, f64, FWD, BWD)
UNARY_OPS(UNARY_INSTANTIATE)

/* Reads and validates the attributes of a unary node. */
static mg_status unary_params_read(mg_node *n, double alpha_dflt, unary_params *p)
{
    mg_status s = mg_elem_attr_float(n, "alpha", alpha_dflt, &p->alpha);
    if (s == MG_OK) s = mg_elem_attr_float(n, "scale", 1.0, &p->scale);
    if (s == MG_OK) s = mg_elem_attr_float(n, "shift", 0.0, &p->shift);
    return s;
}

/* Shared infer: x is f32/f64 of any shape; y has x's dtype and shape. */
static mg_status unary_infer(mg_node *n, double alpha_dflt)
{
    unary_params p;
    mg_status s = mg_elem_check_dtype(n);
    if (s == MG_OK) s = unary_params_read(n, alpha_dflt, &p);
    if (s != MG_OK) return s;
    const mg_tensor *x = mg_node_input(n, 0);
    return mg_node_set_output(n, 0, x->dtype, x->rank, x->shape);
}

/* y = f(x), elementwise. */
static mg_status unary_forward(mg_node *n, double alpha_dflt, unary_fwd_fn f32, unary_fwd_fn f64)
{
    unary_params p;
    mg_status s = unary_params_read(n, alpha_dflt, &p);
    if (s != MG_OK) return s;
    const mg_tensor *x = mg_node_input(n, 0);
    mg_tensor *y = mg_node_output(n, 0);
    (x->dtype == MG_F64 ? f64 : f32)(x->data, y->data, mg_tensor_numel(x), &p);
    return MG_OK;
}

/* dx = dy * f'(x), elementwise. */
static mg_status unary_backward(mg_node *n, double alpha_dflt, unary_bwd_fn f32, unary_bwd_fn f64)
{
    mg_tensor *dx = mg_node_grad_input(n, 0);
    if (!dx) return MG_OK;
    unary_params p;
    mg_status s = unary_params_read(n, alpha_dflt, &p);
    if (s != MG_OK) return s;
    const mg_tensor *x = mg_node_input(n, 0);
    const mg_tensor *y = mg_node_output(n, 0);
    const mg_tensor *dy = mg_node_grad_output(n, 0);
    (x->dtype == MG_F64 ? f64 : f32)(x->data, y->data, dy->data, dx->data, mg_tensor_numel(x), &p);
    return MG_OK;
}

/* Per-op callbacks binding the shared ones to each op's kernels. */
#define UNARY_CALLBACKS(NAME, SUM, ATTRS, FLAGS, ALPHA, FWD, BWD)                              \
    static mg_status NAME##_infer(mg_node *n) { return unary_infer(n, ALPHA); }                \
    static mg_status NAME##_forward(mg_node *n)                                                \
    {                                                                                          \
        return unary_forward(n, ALPHA, NAME##_fwd_f32, NAME##_fwd_f64);                        \
    }                                                                                          \
    static mg_status NAME##_backward(mg_node *n)                                               \
    {                                                                                          \
        return unary_backward(n, ALPHA, NAME##_bwd_f32, NAME##_bwd_f64);                       \
    }
UNARY_OPS(UNARY_CALLBACKS)

#define UNARY_DEF(NAME, SUM, ATTRS, FLAGS, ALPHA, FWD, BWD)                                    \
    {MG_OP_HEADER, .name = #NAME, .summary = SUM, .min_inputs = 1, .max_inputs = 1,           \
     .num_outputs = 1, .attr_names = ATTRS, .flags = FLAGS, .infer = NAME##_infer,             \
     .forward = NAME##_forward, .backward = NAME##_backward},
static const mg_op_def unary_defs[] = {UNARY_OPS(UNARY_DEF)};

mg_status mg_ops_register_unary(mg_registry *r)
{
    return MG_OPS_REGISTER_TABLE(r, unary_defs);
}

/* ---- constructors ------------------------------------------------------------- */

/* A node of unary op `op` on x with no attributes. */
static mg_value unary_node(mg_graph *g, const char *op, mg_value x)
{
    return mg_ops_add1(g, op, &x, 1, NULL);
}

/* A node of unary op `op` on x with one float attribute. */
static mg_value unary_node1(mg_graph *g, const char *op, mg_value x, const char *key, double v)
{
    mg_attrs *a = mg_attrs_new();
    int ok = a && mg_attrs_set_float(a, key, v) == MG_OK;
    return mg_elem_add1(g, op, &x, 1, a, ok);
}

mg_value mg_relu(mg_graph *g, mg_value x) { return unary_node(g, "relu", x); }
mg_value mg_tanh(mg_graph *g, mg_value x) { return unary_node(g, "tanh", x); }
mg_value mg_sigmoid(mg_graph *g, mg_value x) { return unary_node(g, "sigmoid", x); }
mg_value mg_softplus(mg_graph *g, mg_value x) { return unary_node(g, "softplus", x); }
mg_value mg_exp(mg_graph *g, mg_value x) { return unary_node(g, "exp", x); }
mg_value mg_log(mg_graph *g, mg_value x) { return unary_node(g, "log", x); }
mg_value mg_abs(mg_graph *g, mg_value x) { return unary_node(g, "abs", x); }
mg_value mg_square(mg_graph *g, mg_value x) { return unary_node(g, "square", x); }
mg_value mg_sqrt(mg_graph *g, mg_value x) { return unary_node(g, "sqrt", x); }

mg_value mg_leaky_relu(mg_graph *g, mg_value x, double alpha)
{
    return unary_node1(g, "leaky_relu", x, "alpha", alpha);
}

mg_value mg_elu(mg_graph *g, mg_value x, double alpha)
{
    return unary_node1(g, "elu", x, "alpha", alpha);
}

mg_value mg_scale(mg_graph *g, mg_value x, double scale, double shift)
{
    mg_attrs *a = mg_attrs_new();
    int ok = a && mg_attrs_set_float(a, "scale", scale) == MG_OK &&
             mg_attrs_set_float(a, "shift", shift) == MG_OK;
    return mg_elem_add1(g, "scale", &x, 1, a, ok);
}
