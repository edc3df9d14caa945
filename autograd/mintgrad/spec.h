/* mintgrad/spec.h: YAML model specs. A spec file describes a flow model and
 * how to train, evaluate and sample it, in five sections:
 *
 *   plugins: [mintnet]                 plugins to load (mg_plugin_load)
 *   model:   input, preprocess, prior, inverse, layers
 *   data:    dataset, path, train/test file names
 *   train:   batch size, steps, optimizer, schedule, checkpoints, ...
 *   sample:  count, temperature, seed
 *
 * `model.layers` is a list; each item is a one-key map `type: {args}` or a
 * `repeat: N` item with its own `layers:` list (repeats nest). After expansion
 * the layers are numbered 0, 1, 2, ... in order, squeezes included. Layer
 * types come from the context's registry (mg_registry_find_layer), so layer
 * types of plugins work without any change here; each layer's arguments are
 * validated against the type's schema (mintgrad/layer.h) and per-sample
 * shapes are inferred through every layer's out_shape.
 *
 * Every error message starts with "file:line:col: " (1-based), and the call
 * returns MG_ERR_PARSE (YAML syntax, unknown keys, wrong types, ranges,
 * duplicate keys, several documents, an empty file), MG_ERR_NOTFOUND (an
 * unknown layer type or plugin, a missing dataset or file), MG_ERR_SHAPE (a
 * layer that does not fit its input) or whatever the plugin loader returns.
 * The message is on the context; nothing is written anywhere. The full
 * reference of keys and defaults is docs/specs.md. */
#ifndef MINTGRAD_SPEC_H
#define MINTGRAD_SPEC_H

#include <mintgrad/layer.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mg_spec_dequant {
    MG_SPEC_DEQUANT_UNIFORM = 1, /* x = (v + u)/256, u ~ U(0,1) (training) */
    MG_SPEC_DEQUANT_CENTER,      /* x = (v + 0.5)/256 (deterministic) */
    MG_SPEC_DEQUANT_NONE         /* x = v/256 */
} mg_spec_dequant;

typedef enum mg_spec_stop {
    MG_SPEC_STOP_RESIDUAL = 1,   /* stop at max |z - f(x)| <= tolerance */
    MG_SPEC_STOP_FIXED           /* always max_iterations (published) */
} mg_spec_stop;

typedef enum mg_spec_dataset {
    MG_SPEC_DATA_FASHION_MNIST = 1,
    MG_SPEC_DATA_MNIST,
    MG_SPEC_DATA_GENERATED       /* synthetic images, for tests */
} mg_spec_dataset;

typedef enum mg_spec_optim_kind {
    MG_SPEC_OPTIM_ADAM = 1,
    MG_SPEC_OPTIM_SGD
} mg_spec_optim_kind;

typedef enum mg_spec_schedule_kind {
    MG_SPEC_SCHED_CONSTANT = 1,
    MG_SPEC_SCHED_STEP,          /* lr * gamma^(floor(step / step_size)) */
    MG_SPEC_SCHED_COSINE         /* min_lr + (lr - min_lr)(1 + cos(pi t/T))/2 */
} mg_spec_schedule_kind;

/* One flow layer after `repeat` expansion. */
typedef struct mg_spec_layer {
    int index;                   /* 0, 1, 2, ... */
    const char *type;            /* "mintnet.block", "squeeze" */
    const mg_layer_def *def;     /* from the context's registry */
    const mg_attrs *args;        /* validated, defaults filled in; MAP
                                    arguments flattened "<name>.<field>" */
    int64_t in_shape[3];         /* per-sample (C, H, W) */
    int64_t out_shape[3];
    int line, col;               /* where the layer's type key is (1-based) */
} mg_spec_layer;

typedef struct mg_spec_inverse {
    double tolerance;            /* 1e-5; > 0 */
    int max_iterations;          /* 200; >= 1 */
    double damping;              /* beta, 3.5 (published MNIST); > 0.5 */
    mg_dtype precision;          /* MG_F32 ("float32", default) or MG_F64 */
    mg_spec_stop stop;           /* MG_SPEC_STOP_RESIDUAL */
    int adaptive;                /* adaptive damping: 1 or 0 as the YAML says; -1 (not
                                    given): the op's default, on with stop: residual */
    int refine;                  /* finish float32 samples that stall near the tolerance
                                    in float64: 1, 0, or -1 (not given: the op's
                                    default, on with float32 and stop: residual) */
} mg_spec_inverse;

typedef struct mg_spec_model {
    int64_t input[3];            /* (C, H, W); required */
    int64_t output[3];           /* the last layer's out_shape (input if none) */
    mg_spec_dequant dequantize;  /* MG_SPEC_DEQUANT_UNIFORM */
    int logit;                   /* 1 when preprocess.logit is given */
    double logit_lambda;         /* 1e-6; in [0, 0.5) */
    const char *prior;           /* "normal" (the only prior) */
    mg_spec_inverse inverse;
    int n_layers;
    const mg_spec_layer *layers; /* [n_layers] */
    /* Model-level settings handed to layer builders (mg_layer_build.model):
     * "inverse.tolerance" (float), "inverse.max_iterations" (int),
     * "inverse.damping" (float), "inverse.precision" ("float32"/"float64"),
     * "inverse.stop" ("residual"/"fixed"), "inverse.adaptive" and
     * "inverse.refine" (int 0/1, only when given), "logit.lambda" (float, with a
     * logit), "input" (ints C, H, W). */
    const mg_attrs *attrs;
} mg_spec_model;

typedef struct mg_spec_data {
    mg_spec_dataset dataset;     /* required */
    const char *dataset_name;    /* "fashion-mnist", "mnist", "generated" */
    /* Directory of the IDX files; required for fashion-mnist and mnist
     * (checked to exist unless MG_SPEC_NO_DATA_CHECK); NULL for generated. */
    const char *path;
    /* File names inside path: "train-images-idx3-ubyte.gz" and
     * "t10k-images-idx3-ubyte.gz" by default (keys `train`, `test`). */
    const char *train_file;
    const char *test_file;
    /* Images to use: 0 = all (IDX); generated data makes this many
     * (defaults 1024 and 256). */
    int64_t train_size;
    int64_t test_size;
} mg_spec_data;

typedef struct mg_spec_optimizer {
    mg_spec_optim_kind kind;     /* "adam" (default) or "sgd" */
    const char *name;
    double lr;                   /* 1e-3 */
    double betas[2];             /* 0.9, 0.999 */
    double eps;                  /* 1e-8 */
    int amsgrad;                 /* 0 */
    double momentum;             /* 0 (sgd) */
    int nesterov;                /* 0 (sgd) */
    double weight_decay;         /* 0 */
} mg_spec_optimizer;

typedef struct mg_spec_schedule {
    mg_spec_schedule_kind kind;  /* "constant" (default), "step", "cosine" */
    const char *name;
    int64_t step_size;           /* step: decay every step_size steps (1000) */
    double gamma;                /* step: factor (0.1) */
    double min_lr;               /* cosine: final lr (0) */
    int64_t warmup;              /* linear warm-up steps, all kinds (0) */
} mg_spec_schedule;

typedef struct mg_spec_train {
    int64_t batch_size;          /* 32 */
    int64_t steps;               /* 1000 */
    mg_spec_optimizer optimizer;
    uint64_t seed;               /* 0 */
    const char *checkpoint_dir;  /* "runs/<spec file stem>" */
    int64_t checkpoint_every;    /* 0: only at the end */
    int64_t eval_every;          /* 0: only at the end */
    int64_t eval_batches;        /* 0: the whole test set */
    mg_spec_schedule schedule;
    double clip_grad_norm;       /* 0: no clipping */
    double ema;                  /* EMA decay of the weights; 0: off */
} mg_spec_train;

typedef struct mg_spec_sample {
    int64_t count;               /* 64 */
    double temperature;          /* 1.0; > 0 */
    uint64_t seed;               /* the train seed unless given */
} mg_spec_sample;

/* A loaded spec. Every field is filled (defaults where the file says
 * nothing); every string and array is owned by the spec. Fields may be
 * changed by the caller (e.g. a --steps option); the layers may not. */
typedef struct mg_spec {
    const char *filename;        /* as given (display name for strings) */
    const char *text;            /* the raw YAML, NUL-terminated (checkpoints) */
    size_t text_len;
    int n_plugins;
    const char *const *plugins;  /* [n_plugins], in file order */
    mg_spec_model model;
    mg_spec_data data;
    mg_spec_train train;
    mg_spec_sample sample;
    struct mg_spec_priv *priv;   /* loader-private */
} mg_spec;

enum {
    MG_SPEC_NO_PLUGINS = 1u << 0,    /* do not load `plugins` (already loaded,
                                        or registered statically); names are
                                        still recorded */
    MG_SPEC_NO_DATA_CHECK = 1u << 1  /* do not check that data files exist */
};

/* Loads and validates a spec file. Loads the spec's plugins into ctx (unless
 * MG_SPEC_NO_PLUGINS) before resolving layer types. *out is NULL on failure
 * (see the header comment for status codes; message on ctx). The spec
 * borrows ctx's registry: free it before the context. */
mg_status mg_spec_load_file(mg_ctx *ctx, const char *path, unsigned flags, mg_spec **out);
/* The same from text (len bytes; the text need not be NUL-terminated);
 * `filename` is used in messages and kept (NULL: "<string>"). */
mg_status mg_spec_load_string(mg_ctx *ctx, const char *text, size_t len, const char *filename,
                              unsigned flags, mg_spec **out);
void mg_spec_free(mg_spec *s);   /* NULL is a no-op */

/* Where the value of a key was written, by dotted path ("data.path",
 * "train.optimizer.lr", "model.layers", "model.layers.<i>" for expanded
 * layer i): 1 and the 1-based line/col if present, else 0. Lets callers
 * report later failures (a corrupt data file) at the right place. */
int mg_spec_where(const mg_spec *s, const char *key, int *line, int *col);
/* Writes a layer's arguments as "mask=A, latent=16" into buf (always
 * NUL-terminated); returns buf. */
char *mg_spec_layer_args_str(const mg_spec_layer *l, char *buf, size_t n);

/* Replaces the model-level inverse settings (model.inverse and the
 * "inverse.*" entries of model.attrs) for models built afterwards, e.g. a
 * driver's --precision float64. Per-layer `inverse:` settings in the YAML
 * still win. MG_ERR_ARG for values the loader would reject (tolerance <= 0,
 * max_iterations < 1, damping <= 0.5, precision not F32/F64); MG_ERR_NOMEM. */
mg_status mg_spec_set_inverse(mg_spec *s, const mg_spec_inverse *inv);

/* Names for enum values, as written in YAML ("uniform", "float64", ...). */
const char *mg_spec_dequant_name(mg_spec_dequant d);
const char *mg_spec_stop_name(mg_spec_stop s);

/* "<filename>:<line>:<col>: <message>" as a failure on ctx, returning status
 * (for callers that validate more, e.g. the driver). */
mg_status mg_spec_fail_at(const mg_spec *s, mg_ctx *ctx, mg_status status, int line, int col,
                          const char *fmt, ...) MG_PRINTF(6, 7);

#ifdef __cplusplus
}
#endif
#endif
