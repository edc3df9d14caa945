/* examples/progress.h: training progress. On a terminal (isatty) a bar
 * redrawn in place with step, loss, bits/dim, images/s and ETA; otherwise
 * plain lines every `every` steps (and at the end), good for logs. */
#ifndef MG_EXAMPLES_PROGRESS_H
#define MG_EXAMPLES_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

typedef struct progress {
    FILE *out;
    int tty;
    int64_t first, total;   /* steps [first, total) run in this process */
    int64_t every;          /* plain-line period */
    double t0, last_draw;
    int drawn;              /* a bar is on screen */
} progress;

/* Monotonic seconds. */
double progress_now(void);
/* Starts timing; `first` is the step the run starts at (resume). */
void progress_init(progress *p, FILE *out, int64_t first, int64_t total, int64_t every);
/* After step `step` (1-based count of steps done). */
void progress_update(progress *p, int64_t step, double loss, double bpd, double images_per_s);
/* Prints a message on its own line (clears the bar first). */
void progress_note(progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Ends the bar's line. */
void progress_done(progress *p);
/* "1h02m", "3m05s", "12s" into buf. */
char *progress_fmt_time(double s, char *buf, size_t n);

#endif
