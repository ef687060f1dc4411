// What `sinklab train` does before it loads data whose train shards are missing, as data.missing says:
//   error     a clear error saying how to make shards;
//   synthetic write a learnable synthetic dataset (synthetic.h) where data.train / data.val point, saying so;
//   corpus    build the default English corpus with data/fetch_corpus.sh, saying so (an error when offline);
//             the script runs this binary's `prepare` (or $SINKLAB_BIN's) and writes under cache_dir().
#pragma once
#include "config/config.h"

namespace sinklab {

// Makes nothing when data.train matches a file. The synthetic files are the globs with '*' replaced by 000000
// (train ~2M symbols, val ~100k), tokenized with data.tokenizer; they are refused in a folder that holds other
// shards. Then checks that the train and val shards were not made with another tokenizer (check_prepared_tokenizer)
// and that no val shard is a train shard (of a run `resuming`, noted, not refused).
// Returns what it made, and such a shared shard, for the run's log ("" when nothing).
std::string ensure_data(const DataConfig& data, const ModelConfig& model, bool resuming = false);

// A validation shard that training reads too (data.val named like data.train, or data.train's glob catching the val_
// shards; a file by device and inode, so also through another spelling or a link) makes the validation loss one of
// trained-on tokens, which reads as held-out loss: what they share, naming data.val as `val_key`; "" when nothing.
std::string val_shards_trained_on(const DataConfig& data, const std::string& val_key);

}  // namespace sinklab
