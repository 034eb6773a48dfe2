/* CLIP's byte-level BPE tokenizer (OpenAI simple_tokenizer behaviour): text to the token
 * ids the text tower reads, from vocab.json + merges.txt or bpe_simple_vocab_16e6.txt.gz. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _UmgTokenizer UmgTokenizer;

/* Loads vocab.json + merges.txt (HuggingFace) from dir when both are there, else
 * bpe_simple_vocab_16e6.txt.gz (OpenAI / OpenCLIP). */
UmgTokenizer *umg_tokenizer_new_from_dir (const gchar *dir, GError **error);
UmgTokenizer *umg_tokenizer_new_from_bpe_gz (const gchar *path, GError **error);
UmgTokenizer *umg_tokenizer_new_from_files (const gchar *vocab_json, const gchar *merges_txt,
                                            GError **error);
void umg_tokenizer_free (UmgTokenizer *tok);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (UmgTokenizer, umg_tokenizer_free)

guint umg_tokenizer_vocab_size (UmgTokenizer *tok);
gint32 umg_tokenizer_start_id (UmgTokenizer *tok); /* <|startoftext|> */
gint32 umg_tokenizer_end_id (UmgTokenizer *tok);   /* <|endoftext|> */

/* Fills tokens[0..context_length) with the start id, the text's BPE ids, the end id, then
 * zeros; text that does not fit is cut so that the last kept id is the end id. Returns the
 * number of ids before the padding (>= 2), or -1 when context_length < 2. Invalid UTF-8
 * is not an error: each bad sequence becomes U+FFFD first. Safe to call from several
 * threads on one tokenizer. */
gint umg_tokenizer_encode (UmgTokenizer *tok, const gchar *text, gint32 *tokens,
                           gint context_length);

G_END_DECLS
