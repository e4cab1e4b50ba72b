"""Schemathesis hook (loaded by schemathesis.sh through SCHEMATHESIS_HOOKS): a workaround for a
CPython 3.11 bug, not a check.

To describe a lambda given to `.filter()` or `.map()`, Hypothesis parses the source file that
holds it with `ast.parse`. Under CPython up to 3.11.7 (CPython issue 106905, fixed in later
releases), `ast.parse` called deep in the stack can raise `SystemError: AST constructor
recursion depth mismatch`, and schemathesis then reports a "Runtime Error" for the operation
it was generating data for: about one run in three of the contract check, on any operation
(first seen on the inventory upload, then on `GET /api/v1/catalog/products`). The machines
here run CPython 3.11.2 and 3.11.7. The description is only a label, so a lambda whose source
cannot be parsed is described as Hypothesis describes any lambda it cannot find:
`lambda ...: <unknown>`. Nothing else changes: the same values are generated and checked.
"""

import hypothesis.internal.lambda_sources as lambda_sources

_describe = lambda_sources._lambda_description


def _describe_or_unknown(f, *args, **kwargs):
    try:
        return _describe(f, *args, **kwargs)
    except SystemError as error:
        if "recursion depth mismatch" not in str(error):
            raise
        return "lambda: <unknown>"


lambda_sources._lambda_description = _describe_or_unknown
