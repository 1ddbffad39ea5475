#pragma once
// The loops of sgemm (sgemm.hpp) with their parts open (internal): any KernelSpec, so tests run the
// blocking of every tile shape on any CPU; op(B) packed by a routine of the caller's (a conv layer
// packs its column matrix straight from the images: no cols buffer); and C tiles handed to the
// caller (a conv layer adds them into dL/dX: col2im folded into the GEMM's output); op(A) packed by
// a routine of the caller's too, and C stored in blocks of columns (a conv layer reads dL/dY and
// writes Y of a group of images where they lie in the batch: no copies).
#include <climits>
#include <cstddef>
#include <vector>

#include "microkernel.hpp"
#include "sgemm.hpp"

namespace mcnn::kernels::detail {

/// Packs op(B) (K x N) a block at a time, as sgemm's own packing of an Operand does.
class PanelSource {
public:
    virtual ~PanelSource() = default;
    /// op(B)[p0 .. p0+kc, j0 .. j0+nc] into NR-wide panels: panel r holds columns j0 + r*nr .. as
    /// dst[r*nr*kc + p*nr + j]; columns past nc are zero.
    virtual void pack(int p0, int j0, int kc, int nc, int nr, float* dst) const = 0;
    /// The panels pack(p0, j0, kc, nc, nr, ...) would write, where this source holds them packed
    /// already (sgemm then reads them there), or nullptr.
    virtual const float* packed(int /*p0*/, int /*j0*/, int /*kc*/, int /*nc*/, int /*nr*/) const { return nullptr; }
};
// A source of op(A) (M x K) is a PanelSource of op(A)^T (K x M): its NR-wide panels of op(A)^T are
// sgemm's MR-tall panels of op(A) (pack(p0, i0, kc, mc, MR, dst): dst[r*MR*kc + p*MR + i] holds
// op(A)(i0 + r*MR + i, p0 + p)).

/// op(B) of an Operand, packed as sgemm packs it.
class OperandPanels final : public PanelSource {
public:
    explicit OperandPanels(Operand b) : b_(b) {}
    void pack(int p0, int j0, int kc, int nc, int nr, float* dst) const override;

private:
    Operand b_;
};
/// op(A) of an Operand, packed as sgemm packs it (a source of op(A)^T, see above).
class OperandRows final : public PanelSource {
public:
    explicit OperandRows(Operand a) : a_(a) {}
    void pack(int p0, int i0, int kc, int mc, int mr, float* dst) const override;

private:
    Operand a_;
};
/// op(A) (M x K) of an Operand packed once, whole, in the blocks of `spec`: for one A multiplied by
/// many B (a conv layer's kernels, against each group of images), sgemm then reads A's panels where
/// they lie instead of packing them for every product. Read-only after construction, so threads
/// may share it; `a` must outlive it.
class PackedRows final : public PanelSource {
public:
    PackedRows(const KernelSpec& spec, int M, int K, Operand a);
    void pack(int p0, int i0, int kc, int mc, int mr, float* dst) const override;
    const float* packed(int p0, int i0, int kc, int mc, int mr) const override;

private:
    KernelSpec spec_;
    int M_, K_;
    Operand a_;
    std::vector<float> panels_;  // block (p0, i0) of spec's blocks at offset(p0, i0)
    std::ptrdiff_t offset(int p0, int i0) const;
};

/// A row-major C whose columns lie in blocks of `block` columns, block b from data + b * block_stride,
/// row stride ld: element (i, j) at data[(j / block) * block_stride + i * ld + j % block]. (A conv
/// layer's Y for a group of images: one block of Ho*Wo columns per image, where Y holds it.) A
/// plain matrix is one block.
struct ColumnBlocks {
    float* data;
    std::ptrdiff_t ld;
    int block = INT_MAX;
    std::ptrdiff_t block_stride = 0;
};

/// Receives C a tile at a time, to add it somewhere (C += op(A) * op(B), one call per tile and
/// KC block of K, so a tile (i0, j0) may arrive once per block of K).
class TileSink {
public:
    virtual ~TileSink() = default;
    /// Adds the m x n tile (element (i, j) at tile[i * ldt + j]) to C(i0 + i, j0 + j).
    virtual void add(int i0, int j0, int m, int n, const float* tile, std::ptrdiff_t ldt) const = 0;
};

/// The kernel sgemm runs now (sgemm_kernel()), as a spec.
KernelSpec current_spec();

/// sgemm on the kernel and blocks of `spec` (its tile at most max_tile).
void sgemm_with(const KernelSpec& spec, int M, int N, int K, Operand a, Operand b, float* c, std::ptrdiff_t ldc,
                bool accumulate);
/// The same with op(B) packed by `b`.
void sgemm_with(const KernelSpec& spec, int M, int N, int K, Operand a, const PanelSource& b, float* c,
                std::ptrdiff_t ldc, bool accumulate);
/// The same with op(A) packed by `a` (a source of op(A)^T, see above), op(B) by `b`, and C in blocks
/// of columns (a plain matrix: ColumnBlocks{c, ldc}).
void sgemm_with(const KernelSpec& spec, int M, int N, int K, const PanelSource& a, const PanelSource& b, ColumnBlocks c,
                bool accumulate);
/// C += op(A) * op(B) with op(A) packed by `a`, op(B) by `b`, and C's tiles added by `c`.
void sgemm_with(const KernelSpec& spec, int M, int N, int K, const PanelSource& a, const PanelSource& b, const TileSink& c);
/// C += op(A) * op(B) with op(B) packed by `b` and C's tiles added by `c` (not stored anywhere).
void sgemm_with(const KernelSpec& spec, int M, int N, int K, Operand a, const PanelSource& b, const TileSink& c);
/// C += op(A) * op(B) with C's tiles added by `c`.
void sgemm_with(const KernelSpec& spec, int M, int N, int K, Operand a, Operand b, const TileSink& c);

}  // namespace mcnn::kernels::detail
