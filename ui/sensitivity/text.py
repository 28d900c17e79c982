"""Plain-words explanations for the Sensitivity page, for a teaching demo."""

from __future__ import annotations

import streamlit as st

SENSITIVITY = (
    "**In one line:** how much accuracy the model loses when one layer alone is pruned, layer by layer.\n\n"
    "**What it does:** the model is pruned one layer at a time: each layer alone loses 10 %, 20 %, … of its "
    "weights (or channels) while every other layer stays whole, and the test examples are run through each of "
    "these copies. The heatmap shows how much accuracy each copy lost. Each copy is measured as a plan would "
    "leave it: with the BatchNorm toggle on, its BatchNorm statistics are re-estimated first, as the Prune page "
    "does for channels. Channel scans also predict each copy's latency.\n\n"
    "**Why:** layers are not equally delicate. The first layer and the output layer often hold little but "
    "matter a lot; big middle layers are often very redundant. A uniform ratio for every layer wastes that: "
    "the scan shows where there is room.\n\n"
    "**What to expect:** flat, pale rows are layers that can lose a lot; a row that turns red early is a "
    "sensitive layer. Pruning several layers together usually costs a little more than the single-layer "
    "drops add up to, since the damage compounds."
)

ALLOCATION = (
    "**In one line:** one ratio per layer that removes the share you ask for at the least predicted accuracy "
    "cost.\n\n"
    "**What it does:** it picks one ratio per layer, from the ratios you scanned, so that the whole model "
    "loses the share you ask for (of its non-zero parameters, its FLOPs or its predicted latency) while the "
    "predicted accuracy drop stays as small as possible.\n\n"
    "**How:** the predicted drop of a choice is the sum of each layer's own drop in the scan (layers are "
    "assumed to hurt independently). Choosing the cheapest combination that saves enough is a *knapsack* "
    "problem; it is solved exactly by dynamic programming, not greedily. A layer's drop is counted as at "
    "least its drop at any lower ratio, so noise in the scan never rewards cutting more. With "
    "“largest drop per layer” set, ratios that cost a layer more than that are never used.\n\n"
    "**What to expect:** the real drop is usually a bit larger than predicted, because damage compounds; the "
    "measured figure beside the prediction tells you by how much, and a gap of more than 2 points is called "
    "out. Send the suggestion to the Prune page to adjust it by hand, or prune it in steps with fine-tuning."
)

ITERATIVE = (
    "**In one line:** prune a little, fine-tune, repeat, until the plan is reached.\n\n"
    "**What it does:** instead of cutting everything at once, the model is pruned in steps. After each step it "
    "is trained a little (fine-tuned) so the remaining weights can take over the work of the removed ones; "
    "then the next step prunes more, until the plan is reached.\n\n"
    "**Schedules:** *one shot* prunes everything at step 1 and only fine-tunes afterwards. *Linear* prunes the "
    "same amount at every step. *AGP* (automated gradual pruning, Zhu & Gupta 2017) prunes a lot early and "
    "less and less later. Its sparsity after step t of n is s_t = s_f + (s_i − s_f)·(1 − t/n)³, rising from "
    "the initial sparsity s_i (here 0, the unpruned model) to the final one s_f (the plan's ratio); each "
    "layer gets its share of the plan, s_t/s_f = 1 − (1 − t/n)³ (with 3 steps: 70 %, 96 %, 100 %). Early on "
    "there are many unimportant weights to spare; near the end every weight left matters, so the last steps "
    "remove only a few.\n\n"
    "**Fine-tuning** keeps pruning: weights that were set to zero are held at zero while training, and removed "
    "channels stay removed; only what is left learns.\n\n"
    "**What to expect:** the red line (right after each cut) dips, the blue one (after fine-tuning) climbs "
    "back. At high sparsity, steps with fine-tuning keep far more accuracy than one cut."
)

SPARSITY = (
    "**In one line:** train with a penalty that pushes weights (or BatchNorm scales) to zero, then prune what "
    "reached it.\n\n"
    "**What it does:** the model is trained a few more epochs with a penalty on the size of its weights: "
    "λ × the sum of their absolute values (an L1 penalty). Training now trades a little accuracy for smaller "
    "weights, and many weights are pushed to (nearly) zero. Pruning those afterwards removes almost nothing "
    "that matters.\n\n"
    "**Network slimming** (Liu et al. 2017) applies the penalty to the BatchNorm scales γ instead: each γ "
    "multiplies one channel's output, so a γ pushed to zero marks a channel the network learned to do "
    "without. Whole channels are then pruned by their |γ| (the *BatchNorm scale* criterion).\n\n"
    "**What to expect:** after training, the histogram has a tall spike at zero. At the same ratio, the "
    "sparsity-trained model loses much less accuracy when pruned than the same training without the penalty. "
    "Too large a λ costs accuracy before any pruning; too small does nothing. “Use this model” makes the "
    "pruned L1-trained model the session's pruned model, to compare and export."
)


def what_is_this(title: str, text: str) -> None:
    """An expander with one explanation."""
    with st.expander(f"What is this? {title}", icon=":material/school:"):
        st.markdown(text)
