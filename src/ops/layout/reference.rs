//! CPU reference for the layout ops, written as plain loops over (outer, axis, inner) blocks.

/// Constant padding of the last two axes by `[top, bottom, left, right]`.
pub fn pad(x: &[f64], shape: &[usize], pads: [usize; 4], value: f64) -> (Vec<usize>, Vec<f64>) {
    let [top, bottom, left, right] = pads;
    let rank = shape.len();
    let (h, w) = (shape[rank - 2], shape[rank - 1]);
    let (oh, ow) = (h + top + bottom, w + left + right);
    let planes: usize = shape[..rank - 2].iter().product();
    let mut out = vec![value; planes * oh * ow];
    for plane in 0..planes {
        for y in 0..h {
            for xx in 0..w {
                out[(plane * oh + y + top) * ow + xx + left] = x[(plane * h + y) * w + xx];
            }
        }
    }
    let mut out_shape = shape.to_vec();
    out_shape[rank - 2] = oh;
    out_shape[rank - 1] = ow;
    (out_shape, out)
}

/// Elements `start..end` along `axis`.
pub fn slice(x: &[f64], shape: &[usize], axis: usize, start: usize, end: usize) -> (Vec<usize>, Vec<f64>) {
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let mut out = Vec::with_capacity(outer * (end - start) * inner);
    for o in 0..outer {
        let base = o * shape[axis] * inner;
        out.extend_from_slice(&x[base + start * inner..base + end * inner]);
    }
    let mut out_shape = shape.to_vec();
    out_shape[axis] = end - start;
    (out_shape, out)
}

/// The `height × width` window of the last two axes at `(top, left)`.
pub fn crop(
    x: &[f64],
    shape: &[usize],
    top: usize,
    left: usize,
    height: usize,
    width: usize,
) -> (Vec<usize>, Vec<f64>) {
    let rank = shape.len();
    let (rows_shape, rows) = slice(x, shape, rank - 2, top, top + height);
    slice(&rows, &rows_shape, rank - 1, left, left + width)
}

/// Concatenation along `axis`.
pub fn concat(parts: &[(&[f64], &[usize])], axis: usize) -> (Vec<usize>, Vec<f64>) {
    let first = parts[0].1;
    let outer: usize = first[..axis].iter().product();
    let inner: usize = first[axis + 1..].iter().product();
    let mut out = Vec::new();
    for o in 0..outer {
        for (data, shape) in parts {
            let block = shape[axis] * inner;
            out.extend_from_slice(&data[o * block..(o + 1) * block]);
        }
    }
    let mut out_shape = first.to_vec();
    out_shape[axis] = parts.iter().map(|(_, s)| s[axis]).sum();
    (out_shape, out)
}

/// Axes reordered so that output axis `d` is input axis `perm[d]`: each output element, by
/// its coordinates, read from the input element with the same coordinates permuted.
pub fn permute(x: &[f64], shape: &[usize], perm: &[usize]) -> (Vec<usize>, Vec<f64>) {
    let rank = shape.len();
    let out_shape: Vec<usize> = perm.iter().map(|&a| shape[a]).collect();
    let mut in_strides = vec![1; rank];
    for d in (0..rank.saturating_sub(1)).rev() {
        in_strides[d] = in_strides[d + 1] * shape[d + 1];
    }
    let n: usize = out_shape.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut coord = vec![0usize; rank];
    for _ in 0..n {
        let source: usize = (0..rank).map(|d| coord[d] * in_strides[perm[d]]).sum();
        out.push(x[source]);
        // Advance the output coordinate, innermost axis fastest.
        for d in (0..rank).rev() {
            coord[d] += 1;
            if coord[d] < out_shape[d] {
                break;
            }
            coord[d] = 0;
        }
    }
    (out_shape, out)
}
