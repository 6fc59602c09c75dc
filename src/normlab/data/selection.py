"""Which examples of a prepared split a run uses, from its data options (torch-free).

The training engine and ``normlab baselines`` (the trivial baselines of the learning bars) must
evaluate the same test examples, so the selection is written once here (``normlab.train.tasks``
calls it; the option names and their checks are the run config's, ``normlab.train.tasks.NORMLAB_DATA_OPTIONS``):

* ``length_range`` ([min, max] tokens): keep only the examples of that length (translation: the
  source; LM: the sentence without its ``<eos>``), in every split, before the limits;
* ``max_examples``: the first N of every split (the prepared splits are already shuffled);
* ``max_eval_examples``: the first N of valid and test only;
* ``max_len``: a text example's tokens are cut to that many (classification, tagging, LM), see
  :func:`cut`; translation pairs and images are not cut.
"""

from __future__ import annotations

import numpy as np

STORED_EOS = ("lm", "lm_stream")  # the data families whose sentences are stored with their <eos>


def selected(split, split_name: str, options: dict) -> np.ndarray:
    """The indices of the examples of ``split`` (a ``DatasetSplit``) that a run with ``options`` uses:
    those in ``length_range``, then the first ``max_examples`` (valid/test: and ``max_eval_examples``).
    The options are those of a validated run config (``normlab.train`` checks names, types and order)."""
    if split.tokens is None:  # images: no tokens, no lengths
        index = np.arange(len(split.labels))
    else:
        index = np.arange(len(split.tokens))
        length_range = options.get("length_range")
        if length_range is not None:
            lengths = np.asarray(split.tokens.lengths) - (1 if split.family in STORED_EOS else 0)
            index = index[(lengths >= length_range[0]) & (lengths <= length_range[1])]
    limits = [options.get("max_examples")] + ([options.get("max_eval_examples")] if split_name != "train" else [])
    return index[: min([len(index)] + [int(x) for x in limits if x is not None])]


def cut(options: dict) -> slice:
    """The slice ``max_len`` applies to a classification, tagging or LM example's tokens."""
    return slice(0, options["max_len"]) if options.get("max_len") else slice(None)
