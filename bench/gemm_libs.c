/* GEMM libraries side by side on the model's own matrix shapes: OpenBLAS, BLIS and oneDNN,
 * each loaded with dlopen (they export the same cblas names), timed in one run, internally
 * threaded and as one single-threaded call per thread on a column slice (how the CPU backend's
 * thread pool drives the library); then the backend's own path (cpu_gemm.c: oneDNN matmul
 * primitives on packed weight slices, one per thread). Prints one JSON line per (library,
 * mode, shape).
 *
 * usage: gemm_libs [--threads N] [--iterations N] */
#include "cpu_gemm.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef void (*CblasSgemm) (int order, int trans_a, int trans_b, int m, int n, int k, float alpha,
                            const float *a, int lda, const float *b, int ldb, float beta, float *c,
                            int ldc);
typedef int (*DnnlSgemm) (char trans_a, char trans_b, long m, long n, long k, float alpha,
                          const float *a, long lda, const float *b, long ldb, float beta, float *c,
                          long ldc);
typedef void (*SetThreads) (int threads);

typedef struct
{
  const char *name;
  void *handle;
  CblasSgemm cblas;
  DnnlSgemm dnnl;
  SetThreads set_threads;
} Library;

typedef struct
{
  const char *name;
  int m, n, k;
} Shape;

/* ViT-B/16 at 224 px: 197 tokens; each linear layer is x [197, in] · Wᵀ, W [out, in]. */
static const Shape shapes[] = {
  { "qkv", 197, 2304, 768 }, { "out_proj", 197, 768, 768 }, { "fc1", 197, 3072, 768 },
  { "fc2", 197, 768, 3072 }, { "patch", 196, 768, 768 },    { "square", 2048, 2048, 2048 },
};

static double
now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* C [m, n] = A [m, k] · Bᵀ, B [n, k], row-major, on columns [n0, n0 + n). */
static void
gemm (const Library *lib, int m, int n, int k, const float *a, const float *b, float *c, int ldc)
{
  if (lib->dnnl)
    lib->dnnl ('N', 'T', m, n, k, 1.0f, a, k, b, k, 0.0f, c, ldc);
  else
    lib->cblas (101 /* row major */, 111 /* no trans */, 112 /* trans */, m, n, k, 1.0f, a, k, b, k,
                0.0f, c, ldc);
}

typedef struct
{
  const Library *lib;
  const Shape *shape;
  const float *a, *b;
  float *c;
  int n0, n1;
  pthread_barrier_t *barrier;
  int iterations;
  UmgCpuGemm *backend_gemm; /* the backend's path instead of lib */
  int thread;
} Slice;

static void *
slice_main (void *data)
{
  Slice *s = data;
  for (int i = 0; i < s->iterations; i++)
    {
      pthread_barrier_wait (s->barrier);
      if (s->backend_gemm != NULL)
        umg_cpu_gemm_run (s->backend_gemm, s->a, NULL, NULL, s->c + s->n0, s->thread);
      else
        gemm (s->lib, s->shape->m, s->n1 - s->n0, s->shape->k, s->a,
              s->b + (size_t) s->n0 * s->shape->k, s->c + s->n0, s->shape->n);
      pthread_barrier_wait (s->barrier);
    }
  return NULL;
}

static int
compare (const void *x, const void *y)
{
  double a = *(const double *) x, b = *(const double *) y;
  return a < b ? -1 : a > b;
}

/* Median seconds of one product: the library's own threads, or threads slices of columns
 * (sliced), each a single-threaded call. */
static double
time_shape (const Library *lib, const Shape *shape, int threads, int sliced, int iterations,
            UmgCpuGemmEngine *engine)
{
  size_t a_n = (size_t) shape->m * shape->k, b_n = (size_t) shape->n * shape->k;
  float *a = malloc (a_n * sizeof (float)), *b = malloc (b_n * sizeof (float));
  float *c = calloc ((size_t) shape->m * shape->n, sizeof (float));
  double *times = calloc (iterations, sizeof (double)), result;

  for (size_t i = 0; i < a_n; i++)
    a[i] = (float) ((i * 7919) % 1000) / 1000.0f - 0.5f;
  for (size_t i = 0; i < b_n; i++)
    b[i] = (float) ((i * 104729) % 1000) / 1000.0f - 0.5f;
  if (!sliced)
    {
      lib->set_threads (threads);
      gemm (lib, shape->m, shape->n, shape->k, a, b, c, shape->n); /* warm-up */
      for (int i = 0; i < iterations; i++)
        {
          double start = now ();
          gemm (lib, shape->m, shape->n, shape->k, a, b, c, shape->n);
          times[i] = now () - start;
        }
    }
  else
    {
      pthread_t ids[64];
      Slice slices[64];
      pthread_barrier_t barrier;
      if (lib != NULL)
        lib->set_threads (1);
      pthread_barrier_init (&barrier, NULL, threads + 1);
      for (int t = 0; t < threads; t++)
        {
          /* slices in multiples of 16 columns, as the backend cuts them */
          int per = ((shape->n + threads - 1) / threads + 15) / 16 * 16;
          slices[t] = (Slice){ .lib = lib,
                               .shape = shape,
                               .a = a,
                               .b = b,
                               .c = c,
                               .n0 = t * per < shape->n ? t * per : shape->n,
                               .n1 = (t + 1) * per < shape->n ? (t + 1) * per : shape->n,
                               .barrier = &barrier,
                               .iterations = iterations + 1,
                               .thread = t };
          if (engine != NULL)
            {
              UmgCpuGemmShape tile = { .m = shape->m,
                                       .n = slices[t].n1 - slices[t].n0,
                                       .k = shape->k,
                                       .lda = shape->k,
                                       .ldb = shape->k,
                                       .ldc = shape->n,
                                       .trans_b = 1,
                                       .alpha = 1.0f,
                                       .packable_b = b + (size_t) slices[t].n0 * shape->k };
              slices[t].backend_gemm = umg_cpu_gemm_new (engine, &tile, NULL);
            }
          pthread_create (&ids[t], NULL, slice_main, &slices[t]);
        }
      for (int i = 0; i < iterations + 1; i++)
        {
          double start = now ();
          pthread_barrier_wait (&barrier);
          pthread_barrier_wait (&barrier);
          if (i > 0)
            times[i - 1] = now () - start;
        }
      for (int t = 0; t < threads; t++)
        {
          pthread_join (ids[t], NULL);
          umg_cpu_gemm_free (slices[t].backend_gemm);
        }
      pthread_barrier_destroy (&barrier);
    }
  qsort (times, iterations, sizeof (double), compare);
  result = times[iterations / 2];
  free (a);
  free (b);
  free (c);
  free (times);
  return result;
}

static SetThreads omp_set_threads;

static void
dnnl_set_threads (int threads)
{
  omp_set_threads (threads);
}

int
main (int argc, char **argv)
{
  int threads = (int) sysconf (_SC_NPROCESSORS_ONLN), iterations = 10;
  Library libs[3] = {
    { .name = "openblas" },
    { .name = "blis" },
    { .name = "onednn" },
  };
  const char *paths[3] = {
    "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
    "/usr/lib/x86_64-linux-gnu/blis-pthread/libblis.so.4",
    "libdnnl.so.2",
  };

  for (int i = 1; i + 1 < argc; i += 2)
    if (strcmp (argv[i], "--threads") == 0)
      threads = atoi (argv[i + 1]);
    else if (strcmp (argv[i], "--iterations") == 0)
      iterations = atoi (argv[i + 1]);
  if (threads < 1 || threads > 64 || iterations < 1)
    return 2;

  for (int l = 0; l < 3; l++)
    {
      Library *lib = &libs[l];
      lib->handle = dlopen (paths[l], RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
      if (lib->handle == NULL)
        {
          fprintf (stderr, "%s: %s (skipped)\n", lib->name, dlerror ());
          continue;
        }
      if (l == 0)
        lib->set_threads = (SetThreads) dlsym (lib->handle, "openblas_set_num_threads");
      else if (l == 1)
        lib->set_threads = (SetThreads) dlsym (lib->handle, "bli_thread_set_num_threads");
      else
        {
          void *gomp = dlopen ("libgomp.so.1", RTLD_NOW | RTLD_GLOBAL);
          omp_set_threads = gomp ? (SetThreads) dlsym (gomp, "omp_set_num_threads") : NULL;
          lib->set_threads = omp_set_threads ? dnnl_set_threads : NULL;
          lib->dnnl = (DnnlSgemm) dlsym (lib->handle, "dnnl_sgemm");
        }
      if (l < 2)
        lib->cblas = (CblasSgemm) dlsym (lib->handle, "cblas_sgemm");
      if (lib->set_threads == NULL || (lib->cblas == NULL && lib->dnnl == NULL))
        {
          fprintf (stderr, "%s: missing symbols (skipped)\n", lib->name);
          lib->handle = NULL;
        }
    }
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
    for (int l = 0; l < 3; l++)
      for (int sliced = 0; sliced < 2; sliced++)
        {
          const Shape *shape = &shapes[s];
          double seconds;
          if (libs[l].handle == NULL)
            continue;
          seconds = time_shape (&libs[l], shape, threads, sliced,
                                shape->m > 1000 ? (iterations + 1) / 2 : iterations, NULL);
          printf ("{\"library\": \"%s\", \"mode\": \"%s\", \"threads\": %d, \"shape\": \"%s\", "
                  "\"m\": %d, \"n\": %d, \"k\": %d, \"ms\": %.3f, \"gflops\": %.1f}\n",
                  libs[l].name, sliced ? "sliced" : "internal", threads, shape->name, shape->m,
                  shape->n, shape->k, seconds * 1e3,
                  2.0 * shape->m * shape->n * shape->k / seconds * 1e-9);
          fflush (stdout);
        }
  {
    UmgCpuGemmEngine *engine = umg_cpu_gemm_engine_new (threads, umg_cpu_kernels_best (), NULL);
    gint saved = umg_cpu_gemm_enter ();
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
      {
        const Shape *shape = &shapes[s];
        double seconds = time_shape (NULL, shape, threads, 1,
                                     shape->m > 1000 ? (iterations + 1) / 2 : iterations, engine);
        printf ("{\"library\": \"backend (%s)\", \"mode\": \"packed\", \"threads\": %d, "
                "\"shape\": \"%s\", \"m\": %d, \"n\": %d, \"k\": %d, \"ms\": %.3f, "
                "\"gflops\": %.1f}\n",
                umg_cpu_gemm_engine_library (engine), threads, shape->name, shape->m, shape->n,
                shape->k, seconds * 1e3, 2.0 * shape->m * shape->n * shape->k / seconds * 1e-9);
      }
    umg_cpu_gemm_leave (saved);
    umg_cpu_gemm_engine_free (engine);
  }
  return 0;
}
