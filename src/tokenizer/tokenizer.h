/* tokenizer.h - byte-level BPE (GPT-2 style, SmolLM2/Llama 3/Qwen) and
 * SentencePiece-style BPE (Llama 2/TinyLlama), built from GGUF metadata
 * (tokenizer.ggml.*), plus the ChatML chat template.
 *
 * Encoding matches llama.cpp's llama_tokenize() for the same GGUF. */
#ifndef AC_TOKENIZER_H
#define AC_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gguf_file;
struct ac_tokenizer;

/* Builds the tokenizer from f's metadata. The tokenizer copies what it
 * needs: f may be closed afterwards. Unsupported tokenizer.ggml.model or
 * tokenizer.ggml.pre values are an error. */
int ac_tokenizer_load(struct ac_tokenizer **out, const struct gguf_file *f, char *err);
void ac_tokenizer_free(struct ac_tokenizer *t);

/* Encodes text[0..len). add_special: prepend BOS (and append EOS) where the
 * model's metadata asks for it (tokenizer.ggml.add_bos_token/add_eos_token,
 * with llama.cpp's defaults per model type). parse_special: control tokens
 * written in the text (e.g. "<|im_start|>") become their ids instead of
 * being split as text.
 * Writes at most max_ids ids and returns the total count; if that count is
 * > max_ids, call again with a bigger buffer. Returns -1 on error. */
int ac_tokenize(const struct ac_tokenizer *t, const char *text, size_t len,
                bool add_special, bool parse_special, int32_t *ids, int max_ids, char *err);

/* The bytes a token decodes to (byte-level BPE bytes unmapped, SentencePiece
 * "▁" turned into a space, <0xNN> byte tokens into that byte). Control
 * tokens decode to nothing unless render_special. Returns the byte count
 * (may exceed cap: then only cap bytes were written). */
int ac_token_to_piece(const struct ac_tokenizer *t, int32_t id, char *buf, int cap, bool render_special);

int ac_tokenizer_n_vocab(const struct ac_tokenizer *t);
int32_t ac_tokenizer_bos(const struct ac_tokenizer *t); /* -1 if none */
int32_t ac_tokenizer_eos(const struct ac_tokenizer *t);
/* True for tokens that end a generation (EOS, EOT, <|im_end|>, ...). */
bool ac_tokenizer_is_eog(const struct ac_tokenizer *t, int32_t id);

/* ChatML as SmolLM2 uses it: a single user message, with the model's
 * default system prompt when system is NULL, ending with the assistant
 * header. Returns a malloc'd NUL-terminated string (caller frees). */
char *ac_chat_format_chatml(const char *system, const char *user);

#endif
