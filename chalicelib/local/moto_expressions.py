"""moto's handling of update and condition expressions made cheaper (checked against moto 5.2.5
only, installed by `moto_patches.apply`, which refuses other releases).

An UpdateItem, and each Update of a TransactWriteItems, parses its expression and runs ten
validating passes over a copy of the tree. moto's tree for `SET a = :a, b = :b, ...` is a chain
with a node per action, nearly every node an `UpdateExpression`. The manifest PUT's transaction
(an 18-action update and the repository row's) cost 7.1-9.8 ms of CPU, an UpdateItem 1.3-1.5 ms;
with the steps below replaced, 2.2-3.6 ms and 1.0-1.2 ms (`python -m tests.bench.dynamocalls`,
two runs each, direct path):

1. `UpdateExpressionParser.make` (replaced by the memo `_parsed_update`). The expression is
   tokenised and parsed twice per call, by the handler (to list the names and values it uses) and
   by the backend (to validate and apply it), ~0.4 ms each, and the stores' expressions are a few
   dozen strings (placeholders, never values). The parse is a pure function of the string, so
   each string is parsed once and its tree shared. Sharing is safe because no caller changes the
   tree: the handler only reads it (`find_clauses`), and the backend hands it to
   `UpdateExpressionValidator`, which copies it before resolving names and values into it. An
   expression that does not parse raises every time (a failed call is not remembered).
2. `ActionCountValidator` and `OverlappingPathsValidator` (their `traverse`, replaced by
   `_at_root`). Each ran its check at every `UpdateExpression` node, and each check walks the
   node's whole subtree: O(n^2) in the number of actions. The root's subtree holds every clause
   and action a deeper node's does, so the root's check raises whenever a deeper one would, with
   the same exception class; only for an expression already refused can the message name another
   clause or path than moto's would (which of two faults is named first). The registry's stores
   send no such expression.
3. `DepthFirstTraverser.traverse` (replaced by `_traverse`). moto builds the pass's
   node-type-to-handler dict twice per node (`nodes_to_be_processed`, `process`) and tests each
   node with `isinstance` against abstract classes (a slow call each); every pass's dict is a
   constant of the pass, so it is built once per traversal, and which handler a node type gets
   (the first whose class it subclasses, as moto's loop picks) is looked up once per type. Same
   visiting order, same hooks (`pre_processing_of_child`), same replacement of processed nodes in
   their parents.
4. The validator's `deepcopy` of the tree (`validators.deepcopy`, replaced by `_copy`). The tree's
   nodes hold only `type`, `parent` and `children`, and its leaves are strings and integers, so a
   direct copy of the nodes gives what `deepcopy` gives (a new tree with its parent links) without
   the memo and reduce protocol: 40 % of a validation. Anything that is not such a tree (the
   `list_append` operand, a `DynamoType`) still goes through `copy.deepcopy`.
5. `ConditionExpressionParser._lex_condition_expression` (replaced by `_lexed`). A conditional
   write's condition is lexed twice per call (handler and backend), compiling a list of regular
   expressions per token: a third of a conditional UpdateItem's parse. The tokens are a function of
   the string alone (names and values are looked up in later steps), they are immutable tuples
   whose `children` lists no later step changes, and the steps after consume the queue: each call
   gets a new queue of the remembered tokens. A string that does not lex raises every time.
"""

from __future__ import annotations

import copy
import functools
from collections import deque
from collections.abc import Callable
from typing import Any

from moto.dynamodb.comparisons import ConditionExpressionParser
from moto.dynamodb.parsing import validators
from moto.dynamodb.parsing.ast_nodes import (  # type: ignore[attr-defined]
    DepthFirstTraverser,
    Node,
    UpdateExpression,
)
from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

_parse_update = UpdateExpressionParser.make
_moto_make = UpdateExpressionParser.__dict__["make"]
_ROOT_CHECKS: dict[Any, str] = {
    validators.ActionCountValidator: "verify_action_counts",
    validators.OverlappingPathsValidator: "check_for_overlapping_paths",
}
_ATOMIC_LEAVES = (str, int)
_lex_condition = ConditionExpressionParser._lex_condition_expression
_moto_traverse = DepthFirstTraverser.traverse
_moto_deepcopy = getattr(validators, "deepcopy")  # noqa: B009 (not in the module's __all__)


@functools.lru_cache(maxsize=1024)
def _parsed_update(expression: str) -> Any:
    return _parse_update(expression)


@functools.lru_cache(maxsize=1024)
def _condition_tokens(expression: str) -> tuple[Any, ...]:
    return tuple(_lex_condition(ConditionExpressionParser(expression, None, None)))


def _lexed(self: ConditionExpressionParser) -> deque[Any]:
    return deque(_condition_tokens(self.condition_expression))


def _at_root(check: str) -> Callable[[Any, Any], Any]:
    def traverse(self: Any, node: Any) -> Any:
        return getattr(self, check)(node) if isinstance(node, UpdateExpression) else node

    return traverse


def _traverse(self: Any, root: Any) -> Any:
    processing = self._processing_map()
    handlers, handled = tuple(processing.values()), tuple(processing)
    before_child = self.pre_processing_of_child
    # Which handler (index) a node type gets, the first whose type it subclasses, as moto's
    # isinstance loop picks; -1: none. Node classes are ABCs, whose isinstance is slow.
    handler_of: dict[type, int] = {}

    def visit(node: Any, child_id: int) -> Any:
        kind = type(node)
        if not _is_node(kind):
            return node
        parent = node.parent
        if node.children is not None:
            for index, child in enumerate(node.children):
                before_child(node, index)
                visit(child, index)
        at = handler_of.get(kind)
        if at is None:
            at = handler_of[kind] = next((i for i, base in enumerate(handled) if issubclass(kind, base)), -1)
        if at >= 0:
            node = handlers[at](node)
            node.parent = parent
            if parent:
                parent.children[child_id] = node
        return node

    return visit(root, -1)


_NODE_TYPES: dict[type, bool] = {}


def _is_node(kind: type) -> bool:
    """isinstance(x, Node) by x's type: Node is an ABC, whose isinstance costs a call per node."""
    known = _NODE_TYPES.get(kind)
    if known is None:
        known = _NODE_TYPES[kind] = issubclass(kind, Node)
    return known


def _copy(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """`deepcopy` for the validator: a parsed tree copied node by node, anything else as before."""
    if memo is None and isinstance(value, Node) and value.parent is None:
        copied = _copy_tree(value, None)
        if copied is not None:
            return copied
    return copy.deepcopy(value, memo)


def _copy_tree(node: Any, parent: Any) -> Any:
    """The tree under `node` with fresh nodes, or None when it holds anything but nodes with
    `type`/`parent`/`children` and string or integer leaves (then `deepcopy` copies it)."""
    state = node.__dict__
    if state.keys() != {"type", "parent", "children"}:
        return None
    twin = object.__new__(type(node))
    twin.type, twin.parent, twin.children = state["type"], parent, None
    children = state["children"]
    if children is not None:
        copied: list[Any] = []
        for child in children:
            if _is_node(type(child)):
                twin_child = _copy_tree(child, twin)
                if twin_child is None:
                    return None
                copied.append(twin_child)
            elif type(child) in _ATOMIC_LEAVES:
                copied.append(child)
            else:
                return None
        twin.children = copied
    return twin


def install() -> None:
    """Replace the five steps (once per process; `moto_patches.apply` calls it)."""
    UpdateExpressionParser.make = staticmethod(_parsed_update)
    for validator, check in _ROOT_CHECKS.items():
        validator.traverse = _at_root(check)
    DepthFirstTraverser.traverse = _traverse
    setattr(validators, "deepcopy", _copy)  # the name validators.py imported from `copy`  # noqa: B010
    setattr(ConditionExpressionParser, "_lex_condition_expression", _lexed)  # noqa: B010


def uninstall() -> None:
    """moto's own five steps again (tests compare answers both ways)."""
    UpdateExpressionParser.make = _moto_make
    for validator in _ROOT_CHECKS:
        if "traverse" in vars(validator):
            delattr(validator, "traverse")
    DepthFirstTraverser.traverse = _moto_traverse
    setattr(validators, "deepcopy", _moto_deepcopy)  # noqa: B010
    setattr(ConditionExpressionParser, "_lex_condition_expression", _lex_condition)  # noqa: B010
