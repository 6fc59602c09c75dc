"""Under torch.compile the batch-statistics norms give what they give eagerly (outputs, gradients,
RBN's penalty gradient, running statistics): speed on a GPU comes from compiling the model."""

import pytest
import torch

from .helpers import make_norm, random_padding


@pytest.mark.slow  # ~20 s of compilation on 2 cores with a cold cache
@pytest.mark.parametrize("name", ["bn", "rbn"])
def test_compiled_norm_equals_eager(name):
    gen = torch.Generator().manual_seed(0)
    eager, compiled = make_norm(name, 16), make_norm(name, 16)
    run = torch.compile(compiled)
    for _ in range(2):  # the second step sees running statistics moved by the first
        x = torch.randn(4, 6, 16, generator=gen) * 2 + 1
        pad = random_padding(4, 6, gen)
        upstream = torch.randn(4, 6, 16, generator=gen)
        grads = []
        for norm, call in ((eager, eager), (compiled, run)):
            inp = x.clone().requires_grad_(True)
            loss = (call(inp, pad) * upstream).sum()
            if norm.penalty() is not None:
                loss = loss + 10 * norm.penalty()
            loss.backward()
            grads.append([inp.grad, *(p.grad.clone() for p in norm.parameters())])
            norm.zero_grad()
        for ours, ref in zip(*grads, strict=True):
            torch.testing.assert_close(ours, ref)
        for (key, ours), ref in zip(compiled.state_dict().items(), eager.state_dict().values(), strict=True):
            torch.testing.assert_close(ours, ref, msg=key)
