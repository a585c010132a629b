"""CPU-only versions of kernels/u256.py's 64-bit leaf helpers, as LLVM IR: one 64×64→128 multiply instead of four
32-bit ones (mul64), the count-leading-zeros instruction (clz64), and the CPU's 128-by-64 divide (div128by64: `divq`
on x86-64, else the portable helper). Same values as the portable helpers (the u256 and exact tests run the CPU build
against Python ints; the CUDA build and its simulator tests keep the portable ones). kernels/compile.build swaps them
in for the CPU build of any function that calls the portable ones (CPU_LEAVES)."""
import platform

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from . import u256

I64 = ir.IntType(64)
I128 = ir.IntType(128)
PAIR = types.UniTuple(types.uint64, 2)


@intrinsic
def _mul_wide(typingctx, a, b):
    sig = PAIR(types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        product = builder.mul(builder.zext(args[0], I128), builder.zext(args[1], I128))
        lo = builder.trunc(product, I64)
        hi = builder.trunc(builder.lshr(product, ir.Constant(I128, 64)), I64)
        return context.make_tuple(builder, signature.return_type, [lo, hi])

    return sig, codegen


@intrinsic
def _ctlz(typingctx, x):
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctlz(args[0], ir.Constant(ir.IntType(1), 0))  # defined for 0: 64

    return sig, codegen


@intrinsic
def _divq(typingctx, u1, u0, v):
    sig = PAIR(types.uint64, types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        u1_, u0_, v_ = args
        asm_type = ir.FunctionType(ir.LiteralStructType([I64, I64]), [I64, I64, I64])
        out = builder.asm(asm_type, "divq $4", "={rax},={rdx},{rax},{rdx},r", [u0_, u1_, v_], side_effect=False)
        return context.make_tuple(builder, signature.return_type,
                                  [builder.extract_value(out, 0), builder.extract_value(out, 1)])

    return sig, codegen


def _llvm_asm_ready() -> bool:
    """x86-64, with LLVM's inline-assembly parser initialized (llvmlite aborts on inline asm without it)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    import llvmlite.binding as llvm

    llvm.initialize_native_asmparser()
    return True


@njit(inline="always")
def mul64(a, b):
    """u256.mul64 on the CPU: a·b as (lo, hi)."""
    return _mul_wide(a, b)


@njit(inline="always")
def clz64(x):
    """u256.clz64 on the CPU: leading zero bits (64 for 0)."""
    return _ctlz(x)


@njit(inline="always")
def div128by64(u1, u0, v):
    """u256.div128by64 on the CPU (u1 < v: the quotient fits 64 bits, so divq cannot fault)."""
    return _divq(u1, u0, v)


CPU_LEAVES = {"mul64": mul64, "clz64": clz64}
if _llvm_asm_ready():
    CPU_LEAVES["div128by64"] = div128by64
