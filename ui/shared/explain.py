"""Plain-words explanations for a teaching demo: what each granularity removes, what it buys, what to expect.

Criterion texts are not here: each criterion explains itself (`prune_engine.CRITERIA[name].explanation`),
so a newly registered criterion shows up with its own words.
"""

from __future__ import annotations

import streamlit as st

import prune_engine as pe
from prune_engine.importance import PER_CLASS_AVERAGES

GRANULARITIES = {
    "unstructured": (
        "Single weights (unstructured, e.g. magnitude pruning)",
        "*In one line:* the least important weights become zeros; the model keeps its shape and, on ordinary "
        "hardware, its speed, but it stores smaller.\n\n"
        "**What is removed:** individual weights, the least important ones first, are set to exactly zero. "
        "Every layer keeps its shape; it just holds more zeros.\n\n"
        "**Does it get faster?** Usually not. Ordinary (dense) matrix code multiplies every number, zeros "
        "included, so the model runs at the same speed and the FLOP count does not change. The gain is "
        "storage: a file that keeps only the non-zero weights (a sparse format) gets smaller, and special "
        "sparse runtimes can skip the zeros.\n\n"
        "**What to expect:** trained networks have many tiny weights, so often half or more can go with "
        "little loss of accuracy. Push too far and accuracy falls off a cliff.",
    ),
    "channel": (
        "Whole channels (structured)",
        "*In one line:* whole filters or neurons go, so the layers really shrink and the model runs faster "
        "everywhere, at a higher cost in accuracy.\n\n"
        "**What is removed:** whole output channels: a filter of a convolution, or a neuron of a linear "
        "layer, together with everything that only existed for it: the next layer's matching inputs, its "
        "BatchNorm entries, and the same channel in layers tied to it by a residual connection "
        "(“coupled” layers lose the same channels).\n\n"
        "**Does it get faster?** Yes, on any hardware: the weight matrices really become smaller. A layer "
        "that loses a share p of its channels loses that share of its weights, and the layer after it loses "
        "the same share of its inputs. A middle layer whose inputs shrink too loses about 1 − (1 − p)² of its "
        "weights (about half at 30 %); the first layer, which reads the image, loses only p. The sliders' "
        "captions count each layer's weights exactly.\n\n"
        "**What to expect:** accuracy drops faster than with single weights, because whole features go. "
        "Re-estimating the BatchNorm statistics afterwards (the toggle) repairs much of the damage; "
        "fine-tuning repairs more. The model's output layer never loses channels: they are its answers.",
    ),
    "n:m": (
        "N:M pattern (semi-structured)",
        "*In one line:* n of every m weights stay, a regular pattern that some GPUs run twice as fast.\n\n"
        "**What is removed:** in every group of m consecutive weights feeding one output, only the n most "
        "important are kept. 2:4 keeps 2 of every 4, so exactly half of each chosen layer is zero.\n\n"
        "**Does it get faster?** Only on hardware built for it: NVIDIA GPUs with sparse tensor cores "
        "(Ampere and later) run 2:4 matrices up to about twice as fast. On a CPU, or an older GPU, it is "
        "just another set of zeros: same speed, smaller sparse storage.\n\n"
        "**What to expect:** the regular pattern costs a little more accuracy than free unstructured pruning "
        "at the same sparsity. A layer whose input size is not a multiple of m cannot use it.",
    ),
    "block": (
        "Whole blocks (depth pruning)",
        "*In one line:* whole residual blocks or transformer layers are skipped, so the model gets shallower.\n\n"
        "**What is removed:** whole residual blocks or transformer layers. A removed block becomes a plain "
        "pass-through: what comes in goes straight on, as if the block's own contribution (the part added "
        "to its shortcut) were zero. The ratio is the share of blocks removed; blocks that change the shape of "
        "what flows through them (a stride-2 stage entry) cannot be removed.\n\n"
        "**Which blocks go?** By *block influence*, the blocks that change their input least (the cosine "
        "between a block's input and output on calibration examples is close to 1); by *ablation*, the blocks "
        "whose removal changes the model's outputs least; or at random, the baseline.\n\n"
        "**Does it get faster?** Yes, on any hardware: a third of the blocks removed is about a third less "
        "work. **What to expect:** a large drop at once; distillation from the original wins much of it back.",
    ),
}
"""Granularity → (title, explanation)."""

SCOPE = (
    "*In one line:* the same share from every layer, or one ranking across all of them.\n\n"
    "**Per layer:** every unlocked layer loses the same share, the one the global slider shows. Simple, "
    "but it treats a small, delicate layer like a big, redundant one.\n\n"
    "**Global ranking:** the weights (or channels) of all unlocked layers are ranked together and the "
    "least important across the whole model go first, so layers with many unimportant weights lose more "
    "and sensitive layers less. Each layer's slider then shows what the ranking gave it. The bounds keep "
    "the ranking from emptying or sparing any layer completely.\n\n"
    "**Locking a layer** takes it out of both: it keeps the ratio you set by hand."
)


def what_is_this() -> None:
    """Two expanders: the granularities and scope, then every registered criterion in its own words."""
    with st.expander("What is this? Single weights, channels, N:M, per layer or global", icon=":material/school:"):
        for name in pe.GRANULARITIES:
            if name in GRANULARITIES:
                title, text = GRANULARITIES[name]
                st.markdown(f"#### {title}\n\n{text}")
        st.markdown(f"#### Per layer or global\n\n{SCOPE}")
    with st.expander("What is this? Importance criteria", icon=":material/school:"):
        st.markdown(
            "A criterion scores how much each weight or channel matters; pruning removes the lowest scores "
            "first. Criteria marked *needs data* run the model on the test examples to see what matters."
        )
        criteria_explained()


def criteria_explained(with_kind: bool = False) -> None:
    """Every registered criterion in its own words, what it needs, and the one note on per-class averages."""
    for criterion in pe.CRITERIA.values():
        facts = [criterion.kind] if with_kind else []
        facts += ["needs data"] if criterion.needs_data else (["no data needed"] if with_kind else [])
        facts += ["averaged per class"] if criterion.per_class else []
        said = "".join(f" · *{fact}*" for fact in facts)
        st.markdown(f"**{criterion.label}**{said}\n\n{criterion.explanation}")
    st.markdown(per_class_note())


def per_class_note() -> str:
    """The one sentence on per-class averages, with the criteria it concerns."""
    named = ", ".join(criterion.label for criterion in pe.CRITERIA.values() if criterion.per_class)
    return f"*Averaged per class* ({named}): {PER_CLASS_AVERAGES}"


UNSTRUCTURED_NOTE = (
    "This result only sets weights to zero. Dense kernels multiply zeros like any other number, so the model "
    "does not run faster here and its FLOPs stay the same: the gain is storage (the sparse size), unless a "
    "sparse runtime skips the zeros. A sparse format keeps an index beside every remaining weight, so it only "
    "pays off once more than about half of a weight matrix is zero."
)
NM_NOTE = (
    "N:M zeros run faster only on GPUs with sparse tensor cores (NVIDIA Ampere and later) through a sparse "
    "runtime; here the kernels are dense, so expect no speed-up and the same FLOPs. Such hardware also stores "
    "the pattern compactly (a 2-bit position per kept weight); the generic sparse size shown here keeps a "
    "4-byte index per weight and only pays off above about 50 % zeros."
)
