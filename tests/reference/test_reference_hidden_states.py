"""Where the final norms sit: our hook-captured states vs Hugging Face's ``output_hidden_states``.

Findings pinned down here (transformers 5.x):

* BERT: ``output_hidden_states`` = our ``hidden_states`` (no final norm anywhere).
* ViT: ``output_hidden_states`` = our ``hidden_states``; the last element is *before*
  ``model.layernorm``, which only enters ``last_hidden_state`` (= our ``final_state``).
* GPT-2: ``output_hidden_states[-1]`` has ``ln_f`` applied (= ``last_hidden_state``); our
  ``hidden_states[-1]`` is the last block's output *before* ``ln_f``.
"""

from __future__ import annotations

import torch

from pdelang.lab.reference import load_reference
from pdelang.lab.data import load_corpus, load_digits_images


def _hf_states(reference, inputs):
    with torch.no_grad():
        return reference.model(**inputs, output_hidden_states=True, return_dict=True)


def test_bert_states_match_hf():
    reference = load_reference("hf-config:bert")
    inputs = reference.inputs_from_text(load_corpus("heldout", 3))
    run = reference.run(inputs)
    output = _hf_states(reference, inputs)
    assert len(output.hidden_states) == len(run.hidden_states)
    for ours, theirs in zip(run.hidden_states, output.hidden_states):
        torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(run.final_state, output.last_hidden_state)


def test_vit_last_hf_state_is_before_final_norm():
    reference = load_reference("hf-config:vit")
    inputs = reference.inputs_from_images(load_digits_images(3, "heldout")[0])
    run = reference.run(inputs)
    output = _hf_states(reference, inputs)
    for ours, theirs in zip(run.hidden_states, output.hidden_states):
        torch.testing.assert_close(ours, theirs)
    with torch.no_grad():
        torch.testing.assert_close(reference.model.layernorm(run.hidden_states[-1]),
                                   run.final_state)
    torch.testing.assert_close(run.final_state, output.last_hidden_state)
    assert not torch.allclose(run.hidden_states[-1], run.final_state)


def test_gpt2_last_hf_state_has_ln_f_but_ours_does_not():
    reference = load_reference("hf-config:gpt2")
    inputs = reference.inputs_from_text(load_corpus("heldout", 3))
    run = reference.run(inputs)
    output = _hf_states(reference, inputs)
    for ours, theirs in zip(run.hidden_states[:-1], output.hidden_states[:-1]):
        torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(output.hidden_states[-1], output.last_hidden_state)
    with torch.no_grad():
        torch.testing.assert_close(reference.model.ln_f(run.hidden_states[-1]), run.final_state)
    torch.testing.assert_close(run.final_state, output.last_hidden_state)
    assert not torch.allclose(run.hidden_states[-1], output.hidden_states[-1])


def test_runs_do_not_track_gradients():
    reference = load_reference("torch:pre")
    run = reference.run(reference.inputs_from_text(["A short sentence here."]))
    assert not run.final_state.requires_grad
    assert all(not state.requires_grad for state in run.hidden_states)
    assert run.num_layers == 3 and run.bool_mask.all()
