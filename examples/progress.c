/* examples/progress.c: the progress bar (see progress.h). */
#define _POSIX_C_SOURCE 200809L
#include "progress.h"

#include <math.h>
#include <stdarg.h>
#include <time.h>
#include <unistd.h>

#define BAR 24

double progress_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void progress_init(progress *p, FILE *out, int64_t first, int64_t total, int64_t every)
{
    *p = (progress){.out = out, .tty = isatty(fileno(out)), .first = first, .total = total,
                    .every = every > 0 ? every : 100, .t0 = progress_now()};
}

char *progress_fmt_time(double s, char *buf, size_t n)
{
    if (!isfinite(s) || s < 0) s = 0;
    long t = lround(s);
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, n, "%lds", t);
    return buf;
}

static void clear_bar(progress *p)
{
    if (p->tty && p->drawn) fprintf(p->out, "\r\033[K");
    p->drawn = 0;
}

void progress_update(progress *p, int64_t step, double loss, double bpd, double images_per_s)
{
    double now = progress_now(), el = now - p->t0;
    int last = step >= p->total;
    if (p->tty ? (!last && now - p->last_draw < 0.1) : (!last && step % p->every != 0)) return;
    p->last_draw = now;
    double done = (double)(step - p->first), rate = done > 0 ? el / done : 0;
    char eta[32], ela[32];
    progress_fmt_time(rate * (double)(p->total - step), eta, sizeof eta);
    progress_fmt_time(el, ela, sizeof ela);
    if (!p->tty) {
        fprintf(p->out, "step %lld/%lld  loss %.2f  bits/dim %.4f  %.1f img/s  elapsed %s  eta %s\n",
                (long long)step, (long long)p->total, loss, bpd, images_per_s, ela, eta);
        fflush(p->out);
        return;
    }
    int fill = p->total > 0 ? (int)(BAR * step / p->total) : BAR;
    char bar[BAR + 1];
    for (int i = 0; i < BAR; i++) bar[i] = i < fill ? '#' : '.';
    bar[BAR] = 0;
    fprintf(p->out, "\r\033[K[%s] %lld/%lld  loss %.2f  bits/dim %.4f  %.1f img/s  eta %s", bar,
            (long long)step, (long long)p->total, loss, bpd, images_per_s, eta);
    fflush(p->out);
    p->drawn = 1;
}

void progress_note(progress *p, const char *fmt, ...)
{
    clear_bar(p);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->out, fmt, ap);
    va_end(ap);
    fputc('\n', p->out);
    fflush(p->out);
}

void progress_done(progress *p)
{
    if (p->tty && p->drawn) fputc('\n', p->out);
    p->drawn = 0;
    fflush(p->out);
}
