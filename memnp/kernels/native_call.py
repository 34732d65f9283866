"""Calls from one Numba function into another through the callee's machine-code address.

When a Numba function calls another, Numba links the callee's compiled module into the caller's
and optimizes and emits the whole again; the caller's caller does the same with both, and so on.
The one-call training steps (:mod:`memnp.kernels.ensemble_mlp_step`,
:mod:`memnp.kernels.ensemble_chip_step`) call large fused bodies from five levels down, so their
first compilation took half a minute or more, most of it compiling the same bodies again at each
level.

A :class:`Callee` is a dispatcher with the one signature it is called with. Its
:meth:`~Callee.address` (an int) is passed into the caller as an ordinary int64 argument, and the
caller calls ``call(dispatcher, address, (arg, ...))``: an indirect call of the callee's own
compiled function, with Numba's calling convention. The caller's module then holds only a call
through a pointer, so it compiles alone, and its disk cache holds no address. The callee runs the
machine code that a Python call of it runs (the same compiled function, never inlined into the
caller and so never specialized on the caller's constants), so the numbers are those of the
stair called from Python.

The arguments come as one tuple: Python passes a call of more than 30 arguments as
``f(*args)``, and a tuple holding a function would make Numba type the function as an
(experimental) first-class function value.

The argument types at the call site must be exactly the declared ones; anything else is a
compile-time error (a wrong type would hand the callee arrays of another layout).
"""
import numba
import numpy as np
from numba import types
from numba.core import cgutils, errors, sigutils
from numba.extending import intrinsic

__all__ = ["Callee", "addresses", "call"]

#: Declared argument types of every Callee's dispatcher, for the check in :func:`call`.
_DECLARED = {}
#: addresses()'s arrays, per tuple of Callees (addresses hold for the life of the process).
_ADDRESSES = {}


class Callee:
    """A Numba dispatcher called through its address with one declared signature.

    dispatcher: a ``numba.njit`` dispatcher. signature: Numba's signature string with the
    return type, e.g. ``"void(f4[:, ::1], i8)"`` or ``"f8(f4[::1])"``.
    """

    def __init__(self, dispatcher, signature):
        # Under NUMBA_DISABLE_JIT njit returns the Python function: memnp still imports, and
        # address() says why it cannot give one.
        if not isinstance(dispatcher, numba.core.registry.CPUDispatcher) and not numba.config.DISABLE_JIT:
            raise TypeError(f"dispatcher must be a numba.njit function; got {type(dispatcher).__name__}")
        args, restype = sigutils.normalize_signature(signature)
        if restype is None:
            raise ValueError(f"signature must name the return type (void if none); got {signature!r}")
        self.dispatcher = dispatcher
        self.argtypes = tuple(args)
        self.restype = restype
        self._address = None
        _DECLARED[dispatcher] = (self.argtypes, self.restype)

    def __repr__(self):
        name = getattr(self.dispatcher, "py_func", self.dispatcher).__qualname__
        return f"Callee({name}, {len(self.argtypes)} arguments)"

    def address(self):
        """The address (int) of the callee compiled for the declared signature, compiling it (or
        loading it from Numba's disk cache) on first use in this process."""
        if self._address is None:
            if not isinstance(self.dispatcher, numba.core.registry.CPUDispatcher):
                raise RuntimeError("a Callee has no address while Numba's JIT is disabled (NUMBA_DISABLE_JIT)")
            self.dispatcher.compile(self.argtypes)
            compiled = self.dispatcher.overloads[self.argtypes]
            self._address = compiled.library.get_pointer_to_function(compiled.fndesc.mangled_name)
        return self._address


def addresses(callees):
    """(len(callees),) int64: the addresses of ``callees`` (a tuple of :class:`Callee`), in that
    order, made once per process and then reused (the callers only read it)."""
    found = _ADDRESSES.get(callees)
    if found is None:
        found = _ADDRESSES[callees] = np.array([callee.address() for callee in callees], np.int64)
    return found


@intrinsic
def call(typingctx, callee, address, args):
    """``callee(*args)`` through ``address`` (int64, from :meth:`Callee.address` of that
    dispatcher's Callee); returns what the callee returns. Raises a TypingError where the
    arguments' types are not the declared ones. An exception the callee raises propagates."""
    if not isinstance(callee, types.Dispatcher):
        raise errors.TypingError(f"call: the first argument must be a Numba function; got {callee}")
    name = callee.dispatcher.py_func.__qualname__
    if callee.dispatcher not in _DECLARED:
        raise errors.TypingError(f"call: {name} has no Callee (its signature is not declared)")
    declared, restype = _DECLARED[callee.dispatcher]
    if address != types.int64:
        raise errors.TypingError(f"call: the address of {name} must be an int64; got {address}")
    if not isinstance(args, types.BaseTuple):
        raise errors.TypingError(f"call: the arguments of {name} must be a tuple; got {args}")
    argtypes = tuple(args.types)
    if len(argtypes) != len(declared):
        raise errors.TypingError(f"call: {name} is declared with {len(declared)} arguments; got {len(argtypes)}")
    for i, (got, want) in enumerate(zip(argtypes, declared)):
        if got != want:
            raise errors.TypingError(f"call: argument {i} of {name} is {got}; its declared type is {want}")
    signature = restype(callee, address, args)

    def codegen(context, builder, sig, llargs):
        function_type = context.call_conv.get_function_type(restype, argtypes)
        function = builder.inttoptr(llargs[1], function_type.as_pointer())
        values = cgutils.unpack_tuple(builder, llargs[2], len(argtypes))
        status, result = context.call_conv.call_function(builder, function, restype, argtypes, values)
        with cgutils.if_unlikely(builder, status.is_error):
            context.call_conv.return_status_propagate(builder, status)
        return result

    return signature, codegen

