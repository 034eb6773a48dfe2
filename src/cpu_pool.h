/* The CPU backend's thread pool: one per backend, a fixed set of workers that run the tasks of
 * one parallel loop at a time together with the calling thread. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _UmgCpuPool UmgCpuPool;

/* Runs task number task (0 .. n_tasks - 1) on thread thread (0 .. n_threads - 1; 0 is the
 * caller). Which thread takes which task varies from run to run, so a task's result must not
 * depend on thread, which only selects per-thread scratch memory. */
typedef void (*UmgCpuTaskFunc) (gpointer data, guint task, guint thread);

/* The number of threads a context's CPU backend uses: $UMGCLIP_THREADS when it is a positive
 * number, else every core the process may run on. */
guint umg_cpu_threads_setting (void);

/* n_threads threads in all, the caller included (n_threads - 1 workers). */
UmgCpuPool *umg_cpu_pool_new (guint n_threads);
void umg_cpu_pool_free (UmgCpuPool *pool);
guint umg_cpu_pool_threads (const UmgCpuPool *pool);

/* Runs every task and returns when all have finished. Not reentrant: one loop at a time, from
 * one thread at a time. */
void umg_cpu_pool_run (UmgCpuPool *pool, guint n_tasks, UmgCpuTaskFunc func, gpointer data);

/* The first and last + 1 of count items in part part of parts: near-equal contiguous ranges. */
void umg_cpu_split (gsize count, guint parts, guint part, gsize *first, gsize *end);

G_END_DECLS
