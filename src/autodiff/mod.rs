//! Reverse-mode automatic differentiation on a tape.
//!
//! Every op on a [`Var`] computes its value with the GPU kernels right away and, when one of
//! its inputs needs a gradient, appends a node to the tape: its op's name, its inputs' ids and
//! shapes, and a backward closure that owns whatever the rule needs (saved inputs or outputs,
//! options). [`Tape::backward`] walks the tape once, newest node first. A node's gradient is
//! complete when the walk reaches it, because every use of a value comes later on the tape.
//! The closure turns that gradient into its inputs' gradients, which are summed into theirs;
//! then the node, its gradient and its saved tensors are dropped, returning their buffers
//! to the pool as the walk passes.
//!
//! Rules may hand back tensors that share a buffer with others (Add passes `dy` to both
//! inputs, a reshape returns a view), so a contribution is summed in place only into an
//! accumulator no other tensor holds; otherwise the sum goes to a new buffer.
//!
//! The rules themselves live in `rules.rs`, one method per op.

mod rules;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::ops::elementwise::{self, BinaryOp};
use crate::tensor::Tensor;
use crate::{Error, Result};

pub use rules::*;

/// Turns the gradient of a node's output into gradients of its inputs. `needed[i]` says
/// whether input `i` wants one; rules skip the work for those that do not.
pub type BackwardFn = Box<dyn FnOnce(&Tensor, &[bool]) -> Result<Vec<Option<Tensor>>>>;

struct Node {
    /// The op that made this value, for error messages.
    op: &'static str,
    inputs: Vec<usize>,
    /// The shape of each input, which its gradient must have.
    input_shapes: Vec<Vec<usize>>,
    /// None for leaves and for values that need no gradient.
    backward: Option<BackwardFn>,
    requires_grad: bool,
}

#[derive(Default)]
struct TapeState {
    nodes: Vec<Node>,
    paused: usize,
}

/// The record of one forward pass. Cheap to clone; clones share the record.
#[derive(Clone, Default)]
pub struct Tape {
    state: Rc<RefCell<TapeState>>,
}

/// A value on a tape: a tensor plus its place in the record.
#[derive(Clone)]
pub struct Var {
    id: usize,
    value: Tensor,
    requires_grad: bool,
    tape: Tape,
}

/// Gradients of the leaves that asked for one.
#[derive(Debug)]
pub struct Gradients {
    by_id: HashMap<usize, Tensor>,
}

impl Gradients {
    pub fn get(&self, var: &Var) -> Option<&Tensor> {
        self.by_id.get(&var.id)
    }
    pub fn take(&mut self, var: &Var) -> Option<Tensor> {
        self.by_id.remove(&var.id)
    }
}

impl Tape {
    pub fn new() -> Tape {
        Tape::default()
    }

    /// A leaf whose gradient [`Tape::backward`] will report.
    pub fn param(&self, value: Tensor) -> Var {
        self.push("param", value, &[], None, true)
    }

    /// A leaf that needs no gradient: inputs, frozen weights.
    pub fn constant(&self, value: Tensor) -> Var {
        self.push("constant", value, &[], None, false)
    }

    /// Run `f` without recording: every value it makes is a constant.
    pub fn no_grad<T>(&self, f: impl FnOnce() -> T) -> T {
        self.state.borrow_mut().paused += 1;
        let out = f();
        self.state.borrow_mut().paused -= 1;
        out
    }

    pub fn is_recording(&self) -> bool {
        self.state.borrow().paused == 0
    }

    /// Number of nodes recorded so far (leaves included).
    pub fn len(&self) -> usize {
        self.state.borrow().nodes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Record the result of op `op` on `inputs`. Ops call this; `backward` is kept only when
    /// recording and some input needs a gradient.
    pub fn record(&self, op: &'static str, value: Tensor, inputs: &[&Var], backward: BackwardFn) -> Var {
        let requires_grad = self.is_recording() && inputs.iter().any(|v| v.requires_grad);
        if !requires_grad {
            return self.push(op, value, &[], None, false);
        }
        self.push(op, value, inputs, Some(backward), true)
    }

    fn push(
        &self,
        op: &'static str,
        value: Tensor,
        inputs: &[&Var],
        backward: Option<BackwardFn>,
        requires_grad: bool,
    ) -> Var {
        let mut state = self.state.borrow_mut();
        let id = state.nodes.len();
        state.nodes.push(Node {
            op,
            inputs: inputs.iter().map(|v| v.id).collect(),
            input_shapes: inputs.iter().map(|v| v.shape().to_vec()).collect(),
            backward,
            requires_grad,
        });
        Var {
            id,
            value,
            requires_grad,
            tape: self.clone(),
        }
    }

    /// Gradients of a single-element `loss` with respect to every parameter leaf.
    pub fn backward(&self, loss: &Var) -> Result<Gradients> {
        if loss.value.numel() != 1 {
            return Err(Error::Shape {
                op: "backward",
                detail: format!(
                    "the loss must have one element, not shape {:?}",
                    loss.value.shape()
                ),
            });
        }
        let seed = Tensor::full(loss.value.gpu(), loss.value.shape(), 1.0)?;
        self.backward_from(loss, seed)
    }

    /// Gradients given the gradient `seed` of `output` (same shape as its value).
    /// Consumes the record: the tape is empty afterwards.
    pub fn backward_from(&self, output: &Var, seed: Tensor) -> Result<Gradients> {
        if seed.shape() != output.value.shape() {
            return Err(Error::Shape {
                op: "backward",
                detail: format!(
                    "seed {:?} for an output of shape {:?}",
                    seed.shape(),
                    output.value.shape()
                ),
            });
        }
        let mut nodes = std::mem::take(&mut self.state.borrow_mut().nodes);
        if output.id >= nodes.len() {
            return Err(Error::InvalidArgument(
                "this tape's record was consumed by an earlier backward pass; record the graph again on a new tape".into(),
            ));
        }
        let needed: Vec<bool> = nodes.iter().map(|n| n.requires_grad).collect();
        let mut grads: Vec<Option<Tensor>> = vec![None; nodes.len()];
        let mut result = HashMap::new();
        if output.requires_grad {
            grads[output.id] = Some(seed);
        }
        for id in (0..nodes.len()).rev() {
            let Some(grad) = grads[id].take() else { continue };
            let node = &mut nodes[id];
            let Some(rule) = node.backward.take() else {
                // A leaf that asked for its gradient.
                result.insert(id, grad);
                continue;
            };
            let op = node.op;
            let in_backward = |source: Error| Error::Backward {
                op,
                source: Box::new(source),
            };
            let wants: Vec<bool> = node.inputs.iter().map(|&i| needed[i]).collect();
            let input_grads = rule(&grad, &wants).map_err(in_backward)?;
            if input_grads.len() != node.inputs.len() {
                return Err(in_backward(Error::InvalidArgument(format!(
                    "the rule returned {} gradients for {} inputs",
                    input_grads.len(),
                    node.inputs.len()
                ))));
            }
            for ((&input, shape), g) in node.inputs.iter().zip(&node.input_shapes).zip(input_grads) {
                let Some(g) = g else { continue };
                if !needed[input] {
                    continue;
                }
                if g.shape() != shape.as_slice() {
                    return Err(in_backward(Error::Shape {
                        op: "backward",
                        detail: format!(
                            "gradient of shape {:?} for an input of shape {shape:?}",
                            g.shape()
                        ),
                    }));
                }
                let sum = match grads[input].take() {
                    None => g,
                    Some(acc) => accumulate(acc, &g).map_err(in_backward)?,
                };
                grads[input] = Some(sum);
            }
            // `grad` and the rule's saved tensors drop here, back to the pool.
        }
        drop(grads);
        drop(nodes);
        // Rules may have handed two leaves one buffer; each gradient the caller gets is its own.
        for grad in result.values_mut() {
            if !grad.is_sole_holder() {
                *grad = grad.deep_clone()?;
            }
        }
        Ok(Gradients { by_id: result })
    }
}

/// `acc + g`, in place when no other tensor holds `acc`'s buffer.
fn accumulate(acc: Tensor, g: &Tensor) -> Result<Tensor> {
    if acc.is_sole_holder() {
        elementwise::binary_into(&acc, g, BinaryOp::Add, &acc)?;
        Ok(acc)
    } else {
        elementwise::add(&acc, g)
    }
}

impl Var {
    pub fn value(&self) -> &Tensor {
        &self.value
    }
    pub fn shape(&self) -> &[usize] {
        self.value.shape()
    }
    pub fn requires_grad(&self) -> bool {
        self.requires_grad
    }
    pub fn tape(&self) -> &Tape {
        &self.tape
    }
    pub fn into_value(self) -> Tensor {
        self.value
    }
}
