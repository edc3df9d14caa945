/* examples/train.h: the training state of `mintgrad train` and its helpers:
 * learning-rate schedules, EMA weights, checkpoints that resume exactly,
 * the metrics CSV and the training-curve picture. The loop itself is in
 * cmd_train.c. */
#ifndef MG_EXAMPLES_TRAIN_H
#define MG_EXAMPLES_TRAIN_H

#include "cli.h"
#include "data.h"
#include "evaluate.h"
#include "progress.h"

typedef struct trainer {
    cli_session *S;
    char *dir, *ckpt_path, *csv_path, *curve_path;
    dataset train, test;
    batcher bt;
    mg_model_graph *fg;      /* training graph */
    mg_exec *ex;             /* training compile */
    evaluator ev;            /* test-set evaluation */
    mg_optim *opt;
    mg_tensor **ema;         /* [params] EMA copies, NULL when off */
    mg_rng noise;            /* dequantisation noise */
    uint8_t *pix;            /* [batch, c, h, w] */
    int64_t step, steps, batch;
    int64_t stop;            /* this process stops at this step (--until) */
    double elapsed;          /* seconds trained before this process */
    double last_loss, last_bpd, test_bpd;
    FILE *csv;
    progress pr;
} trainer;

/* The learning rate at step (0-based) under the spec's schedule. */
double train_lr(const mg_spec *spec, int64_t step);

/* EMA weights: created from the current parameters; updated after a step
 * (e = d e + (1 - d) p); swapped with the parameters around evaluation. */
mg_status train_ema_init(trainer *t);
void train_ema_update(trainer *t, double decay);
void train_ema_swap(trainer *t);
void train_ema_free(trainer *t);

/* Writes the full training state to t->ckpt_path (atomically). */
mg_status train_save(trainer *t);
/* Restores everything train_save wrote, from `path`. */
mg_status train_resume(trainer *t, const char *path);

/* Opens the metrics CSV: truncated to rows up to t->step when resuming,
 * created with a header otherwise. */
mg_status train_csv_open(trainer *t, int resume);
void train_csv_row(trainer *t, double lr, double loss, double bpd, double test_bpd, double gnorm, double ips);
/* Draws the training curve (train bits/dim, smoothed, and test bits/dim)
 * from the CSV into t->curve_path. */
mg_status train_curve(trainer *t);

#endif
