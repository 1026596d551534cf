//! Reverse-mode automatic differentiation on a tape.
//!
//! Every op on a [`Var`] computes its value with the GPU kernels right away and, when one of
//! its inputs needs a gradient, appends a node to the tape: the ids of its inputs and a
//! backward closure that owns whatever the rule needs (saved inputs or outputs, options).
//! [`Tape::backward`] walks the tape once, newest node first. A node's gradient is complete
//! when the walk reaches it, because every use of a value comes later on the tape. The
//! closure turns that gradient into its inputs' gradients, which are summed into theirs;
//! then the node, its gradient and its saved tensors are dropped, returning their buffers
//! to the pool as the walk passes.
//!
//! The rules themselves live in `rules.rs`, one function per op.

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
    inputs: Vec<usize>,
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
        self.push(value, Vec::new(), None, true)
    }

    /// A leaf that needs no gradient: inputs, frozen weights.
    pub fn constant(&self, value: Tensor) -> Var {
        self.push(value, Vec::new(), None, false)
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

    /// Record the result of an op on `inputs`. Ops call this; `backward` is kept only when
    /// recording and some input needs a gradient.
    pub fn record(&self, value: Tensor, inputs: &[&Var], backward: BackwardFn) -> Var {
        let requires_grad = self.is_recording() && inputs.iter().any(|v| v.requires_grad);
        if !requires_grad {
            return self.push(value, Vec::new(), None, false);
        }
        let ids = inputs.iter().map(|v| v.id).collect();
        self.push(value, ids, Some(backward), true)
    }

    fn push(
        &self,
        value: Tensor,
        inputs: Vec<usize>,
        backward: Option<BackwardFn>,
        requires_grad: bool,
    ) -> Var {
        let mut state = self.state.borrow_mut();
        let id = state.nodes.len();
        state.nodes.push(Node {
            inputs,
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
            let wants: Vec<bool> = node.inputs.iter().map(|&i| needed[i]).collect();
            let input_grads = rule(&grad, &wants)?;
            for (&input, g) in node.inputs.iter().zip(input_grads) {
                let Some(g) = g else { continue };
                if !needed[input] {
                    continue;
                }
                grads[input] = Some(match grads[input].take() {
                    None => g,
                    Some(sum) => {
                        // Several uses of one value: sum their contributions in place.
                        elementwise::binary_into(&sum, &g, BinaryOp::Add, &sum)?;
                        sum
                    }
                });
            }
            // `grad` and the rule's saved tensors drop here, back to the pool.
        }
        Ok(Gradients { by_id: result })
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
