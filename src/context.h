/* The context behind the public API: model, tokenizer, backend and the planned graphs. */
#pragma once

#include "backend.h"
#include "model.h"
#include "tokenizer.h"
#include "umgclip.h"

struct _UmgClipContext
{
  UmgModel *model;
  UmgTokenizer *tokenizer; /* loaded on first use: image-only directories need none */
  UmgBackend *backend;
  UmgClipInfo info;
  /* Planned graphs, least recently used first out: PlanKey -> PlannedGraph, and the queue of
   * PlannedGraphs, most recently used at the head. */
  GHashTable *graphs;
  GQueue recent;
  guint plans_made;
  guint64 weights_bytes; /* the model's weights as the backend receives them */
  guint64 memory_limit;  /* UMGCLIP_MEMORY_LIMIT, else the backend's memory_bytes; 0: none */
  const gchar *limit_source;
  GMutex lock; /* one pass at a time (plans own their arenas); guards graphs and tokenizer */
};
