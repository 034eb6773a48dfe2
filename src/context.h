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
  GHashTable *graphs; /* description -> PlannedGraph */
  GMutex lock;        /* one pass at a time: plans own their arenas */
};
