/* The CPU backend's thread pool. Workers wait for a new loop by spinning briefly (ops follow
 * each other within microseconds during a pass) and then sleep on a condition, so an idle
 * context costs nothing. Tasks are handed out from one atomic counter. */
#include "cpu_pool.h"

#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause ()
#else
#define cpu_relax() ((void) 0)
#endif

/* Polls before a waiting worker sleeps: about a millisecond. */
#define SPIN_POLLS 20000
/* Polls before the caller sleeps until the last task ends: tens of microseconds, so that a
 * worker the kernel preempted gets the caller's core back on a loaded machine. */
#define FINISH_POLLS 2000

struct _UmgCpuPool
{
  guint n_threads;
  GThread **workers; /* n_threads - 1 */
  GMutex mutex;
  GCond wake;
  GCond finished;
  gint caller_sleeping; /* atomic */
  gint generation;      /* bumped for every loop (atomic) */
  gint sleeping;        /* workers waiting on wake (atomic) */
  gint quit;
  /* the current loop */
  UmgCpuTaskFunc func;
  gpointer data;
  guint n_tasks;
  gint next_task; /* atomic */
  gint busy;      /* workers still in the loop (atomic) */
};

typedef struct
{
  UmgCpuPool *pool;
  guint thread;
} Worker;

guint
umg_cpu_threads_setting (void)
{
  const gchar *setting = g_getenv ("UMGCLIP_THREADS");
  if (setting != NULL && *setting != '\0')
    {
      gchar *end = NULL;
      guint64 value = g_ascii_strtoull (setting, &end, 10);
      if (end != NULL && *end == '\0' && value > 0 && value <= 1024)
        return (guint) value;
    }
  return MAX (g_get_num_processors (), 1);
}

void
umg_cpu_split (gsize count, guint parts, guint part, gsize *first, gsize *end)
{
  gsize base = count / parts, extra = count % parts;
  *first = part * base + MIN (part, extra);
  *end = *first + base + (part < extra ? 1 : 0);
}

static void
run_tasks (UmgCpuPool *pool, guint thread)
{
  for (;;)
    {
      guint task = (guint) g_atomic_int_add (&pool->next_task, 1);
      if (task >= pool->n_tasks)
        return;
      pool->func (pool->data, task, thread);
    }
}

static gpointer
worker_main (gpointer data)
{
  Worker *worker = data;
  UmgCpuPool *pool = worker->pool;
  gint seen = 0;

  for (;;)
    {
      gint polls = 0;
      while (g_atomic_int_get (&pool->generation) == seen && polls < SPIN_POLLS)
        {
          cpu_relax ();
          polls++;
        }
      if (g_atomic_int_get (&pool->generation) == seen)
        {
          g_mutex_lock (&pool->mutex);
          g_atomic_int_inc (&pool->sleeping);
          while (g_atomic_int_get (&pool->generation) == seen)
            g_cond_wait (&pool->wake, &pool->mutex);
          g_atomic_int_add (&pool->sleeping, -1);
          g_mutex_unlock (&pool->mutex);
        }
      seen = g_atomic_int_get (&pool->generation);
      if (g_atomic_int_get (&pool->quit))
        break;
      run_tasks (pool, worker->thread);
      if (g_atomic_int_dec_and_test (&pool->busy) && g_atomic_int_get (&pool->caller_sleeping))
        {
          g_mutex_lock (&pool->mutex);
          g_cond_signal (&pool->finished);
          g_mutex_unlock (&pool->mutex);
        }
    }
  g_free (worker);
  return NULL;
}

UmgCpuPool *
umg_cpu_pool_new (guint n_threads)
{
  UmgCpuPool *pool = g_new0 (UmgCpuPool, 1);

  pool->n_threads = MAX (n_threads, 1);
  g_mutex_init (&pool->mutex);
  g_cond_init (&pool->wake);
  g_cond_init (&pool->finished);
  pool->workers = g_new0 (GThread *, pool->n_threads);
  for (guint i = 1; i < pool->n_threads; i++)
    {
      Worker *worker = g_new0 (Worker, 1);
      worker->pool = pool;
      worker->thread = i;
      pool->workers[i - 1] = g_thread_new ("umgclip-cpu", worker_main, worker);
    }
  return pool;
}

static void
wake_workers (UmgCpuPool *pool)
{
  g_atomic_int_inc (&pool->generation);
  if (g_atomic_int_get (&pool->sleeping) > 0)
    {
      g_mutex_lock (&pool->mutex);
      g_cond_broadcast (&pool->wake);
      g_mutex_unlock (&pool->mutex);
    }
}

void
umg_cpu_pool_free (UmgCpuPool *pool)
{
  if (pool == NULL)
    return;
  g_atomic_int_set (&pool->quit, 1);
  wake_workers (pool);
  for (guint i = 1; i < pool->n_threads; i++)
    g_thread_join (pool->workers[i - 1]);
  g_free (pool->workers);
  g_mutex_clear (&pool->mutex);
  g_cond_clear (&pool->wake);
  g_cond_clear (&pool->finished);
  g_free (pool);
}

guint
umg_cpu_pool_threads (const UmgCpuPool *pool)
{
  return pool->n_threads;
}

void
umg_cpu_pool_run (UmgCpuPool *pool, guint n_tasks, UmgCpuTaskFunc func, gpointer data)
{
  guint polls = 0;

  if (n_tasks == 0)
    return;
  if (pool->n_threads == 1 || n_tasks == 1)
    {
      for (guint task = 0; task < n_tasks; task++)
        func (data, task, 0);
      return;
    }
  pool->func = func;
  pool->data = data;
  pool->n_tasks = n_tasks;
  g_atomic_int_set (&pool->next_task, 0);
  g_atomic_int_set (&pool->busy, (gint) pool->n_threads - 1);
  wake_workers (pool);
  run_tasks (pool, 0);
  /* the last tasks are finishing on other threads */
  while (g_atomic_int_get (&pool->busy) > 0 && polls++ < FINISH_POLLS)
    cpu_relax ();
  if (g_atomic_int_get (&pool->busy) > 0)
    {
      g_atomic_int_set (&pool->caller_sleeping, 1);
      g_mutex_lock (&pool->mutex);
      while (g_atomic_int_get (&pool->busy) > 0)
        g_cond_wait (&pool->finished, &pool->mutex);
      g_mutex_unlock (&pool->mutex);
      g_atomic_int_set (&pool->caller_sleeping, 0);
    }
}
