//! A small pickle virtual machine: the opcodes of protocols 0 to 5 that `torch.save` and
//! python's own containers emit. It never imports anything: globals stay names, and calls to
//! them are either understood by the [`Host`] (tensors, storages) or kept as inert objects.
//!
//! Every length is checked against the input before use, so a malformed pickle costs at
//! most memory proportional to its size, and deep nesting is dropped iteratively.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use super::torch::{StorageView, TensorRef};

/// A python module-level name, as GLOBAL or STACK_GLOBAL names it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Global {
    pub module: String,
    pub name: String,
}

impl Global {
    pub fn is(&self, module: &str, name: &str) -> bool {
        self.module == module && self.name == name
    }
}

/// A call or instantiation the VM does not interpret, kept so containers stay well formed.
pub(crate) struct Object {
    pub class: Value,
    pub args: Value,
    pub state: Value,
}

/// A python dict keeping insertion order, with string keys indexed so that building a large
/// one stays linear.
#[derive(Default)]
pub(crate) struct Dict {
    pub entries: Vec<(Value, Value)>,
    string_keys: HashMap<Rc<str>, usize>,
}

impl Dict {
    pub fn insert(&mut self, key: Value, value: Value) {
        if let Value::Str(s) = &key {
            if let Some(&at) = self.string_keys.get(s) {
                self.entries[at].1 = value;
                return;
            }
            self.string_keys.insert(s.clone(), self.entries.len());
        }
        self.entries.push((key, value));
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.string_keys.get(key).map(|&at| &self.entries[at].1)
    }
}

#[derive(Clone)]
pub(crate) enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer wider than 64 bits, as little-endian two's-complement bytes.
    BigInt(Rc<[u8]>),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Tuple(Rc<Vec<Value>>),
    List(Rc<RefCell<Vec<Value>>>),
    Dict(Rc<RefCell<Dict>>),
    Global(Rc<Global>),
    Object(Rc<RefCell<Object>>),
    Storage(Rc<StorageView>),
    Tensor(Rc<TensorRef>),
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    /// The items of a tuple or list.
    pub fn items(&self) -> Option<Vec<Value>> {
        match self {
            Value::Tuple(t) => Some(t.as_ref().clone()),
            Value::List(l) => Some(l.borrow().clone()),
            _ => None,
        }
    }

    /// A short description for error messages; never recursive.
    pub fn describe(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(b) => format!("bool {b}"),
            Value::Int(i) => format!("int {i}"),
            Value::BigInt(_) => "big int".into(),
            Value::Float(f) => format!("float {f}"),
            Value::Str(s) => format!("str {:?}", truncate(s, 40)),
            Value::Bytes(b) => format!("{} bytes", b.len()),
            Value::Tuple(t) => format!("tuple of {}", t.len()),
            Value::List(l) => format!("list of {}", l.borrow().len()),
            Value::Dict(d) => format!("dict of {}", d.borrow().entries.len()),
            Value::Global(g) => format!("{}.{}", g.module, g.name),
            Value::Object(o) => match &o.borrow().class {
                Value::Global(g) => format!("object of {}.{}", g.module, g.name),
                _ => "object".into(),
            },
            Value::Storage(_) => "storage".into(),
            Value::Tensor(_) => "tensor".into(),
        }
    }

    fn global(module: &str, name: &str) -> Value {
        Value::Global(Rc::new(Global {
            module: module.into(),
            name: name.into(),
        }))
    }

    /// Moves out the children this value alone owns, so they can be dropped without recursion.
    fn take_children(&mut self, out: &mut Vec<Value>) {
        match self {
            Value::Tuple(t) => {
                if let Some(items) = Rc::get_mut(t) {
                    out.append(items);
                }
            }
            Value::List(l) => {
                if let Some(items) = Rc::get_mut(l) {
                    out.append(items.get_mut());
                }
            }
            Value::Dict(d) => {
                if let Some(dict) = Rc::get_mut(d) {
                    for (k, v) in dict.get_mut().entries.drain(..) {
                        out.push(k);
                        out.push(v);
                    }
                }
            }
            Value::Object(o) => {
                if let Some(object) = Rc::get_mut(o) {
                    let object = object.get_mut();
                    for part in [&mut object.class, &mut object.args, &mut object.state] {
                        out.push(std::mem::replace(part, Value::None));
                    }
                }
            }
            _ => {}
        }
    }
}

impl Drop for Value {
    fn drop(&mut self) {
        let mut pending = Vec::new();
        self.take_children(&mut pending);
        while let Some(mut child) = pending.pop() {
            child.take_children(&mut pending);
        }
    }
}

/// Every mutable container (list, dict, object) a run of the VM made. A pickle can make them
/// refer to themselves (`l = []; l.append(l)`, through the memo or DUP), and reference
/// counting never frees such a cycle; dropping the arena empties each container, which breaks
/// every cycle, so whatever a hostile file builds is freed. Keep it until the values are no
/// longer read.
#[derive(Default)]
pub(crate) struct Arena {
    containers: Vec<Value>,
}

impl Drop for Arena {
    fn drop(&mut self) {
        for container in &self.containers {
            // Moved out first and dropped after the borrow ends: dropping may reach this same
            // container again through a cycle.
            let mut contents = Vec::new();
            match container {
                Value::List(l) => {
                    if let Ok(mut items) = l.try_borrow_mut() {
                        contents.append(&mut items);
                    }
                }
                Value::Dict(d) => {
                    if let Ok(mut dict) = d.try_borrow_mut() {
                        dict.string_keys.clear();
                        for (k, v) in dict.entries.drain(..) {
                            contents.push(k);
                            contents.push(v);
                        }
                    }
                }
                Value::Object(o) => {
                    if let Ok(mut object) = o.try_borrow_mut() {
                        let object = &mut *object;
                        for part in [&mut object.class, &mut object.args, &mut object.state] {
                            contents.push(std::mem::replace(part, Value::None));
                        }
                    }
                }
                _ => {}
            }
            drop(contents);
        }
    }
}

/// What the VM cannot decide alone: persistent ids (storages) and calls it may interpret.
pub(crate) trait Host {
    fn persistent_load(&mut self, pid: &Value) -> Result<Value, String>;
    /// `Ok(None)` when the callable is not one the host interprets.
    fn call(&mut self, callable: &Global, args: &[Value]) -> Result<Option<Value>, String>;
}

/// Runs one pickle from the start of `bytes`; returns its value and the bytes it consumed.
/// The containers it makes are recorded in `arena`, which must outlive every use of them.
pub(crate) fn unpickle(
    bytes: &[u8],
    host: &mut dyn Host,
    arena: &mut Arena,
) -> Result<(Value, usize), String> {
    let mut vm = Machine {
        input: bytes,
        pos: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        host,
        arena,
    };
    loop {
        let at = vm.pos;
        let op = vm.byte()?;
        let done = vm
            .step(op)
            .map_err(|e| format!("pickle opcode 0x{op:02x} at byte {at}: {e}"))?;
        if done {
            let value = vm.pop()?;
            return Ok((value, vm.pos));
        }
    }
}

struct Machine<'a, 'h> {
    input: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    host: &'h mut dyn Host,
    arena: &'h mut Arena,
}

impl<'a> Machine<'a, '_> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.input.len());
        let end = end.ok_or_else(|| format!("needs {n} bytes but the input ends"))?;
        let slice = &self.input[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn u64_len(&mut self) -> Result<usize, String> {
        let n = u64::from_le_bytes(self.take(8)?.try_into().unwrap());
        usize::try_from(n).map_err(|_| format!("length {n} is out of range"))
    }

    fn line(&mut self) -> Result<&'a str, String> {
        let rest = &self.input[self.pos..];
        let len = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("unterminated text argument")?;
        let line = self.take(len + 1)?;
        std::str::from_utf8(&line[..len]).map_err(|_| "text argument is not UTF-8".to_string())
    }

    fn pop(&mut self) -> Result<Value, String> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err("stack underflow at a mark".into());
        }
        self.stack.pop().ok_or_else(|| "stack underflow".into())
    }

    fn top(&self) -> Result<&Value, String> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err("stack underflow at a mark".into());
        }
        self.stack.last().ok_or_else(|| "stack underflow".into())
    }

    /// Everything pushed since the last MARK, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<Value>, String> {
        let mark = self.marks.pop().ok_or("no MARK on the stack")?;
        if mark > self.stack.len() {
            return Err("MARK above the stack".into());
        }
        Ok(self.stack.split_off(mark))
    }

    /// Pushes a value, recording it in the arena when it is a mutable container.
    fn push_container(&mut self, value: Value) {
        if matches!(value, Value::List(_) | Value::Dict(_) | Value::Object(_)) {
            self.arena.containers.push(value.clone());
        }
        self.stack.push(value);
    }

    fn push_str(&mut self, raw: &[u8]) -> Result<(), String> {
        let s = std::str::from_utf8(raw).map_err(|_| "string is not UTF-8".to_string())?;
        self.stack.push(Value::Str(s.into()));
        Ok(())
    }

    /// Python 2 `str`: text when it is UTF-8, else bytes read as latin-1 like python 3 does.
    fn push_legacy_str(&mut self, raw: &[u8]) {
        let s: Rc<str> = match std::str::from_utf8(raw) {
            Ok(s) => s.into(),
            Err(_) => raw.iter().map(|&b| b as char).collect::<String>().into(),
        };
        self.stack.push(Value::Str(s));
    }

    fn memo_put(&mut self, key: u32) -> Result<(), String> {
        let value = self.top()?.clone();
        self.memo.insert(key, value);
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> Result<(), String> {
        let value = self
            .memo
            .get(&key)
            .ok_or_else(|| format!("memo key {key} was never stored"))?;
        self.stack.push(value.clone());
        Ok(())
    }

    fn set_items(&mut self, items: Vec<Value>) -> Result<(), String> {
        if items.len() % 2 != 0 {
            return Err("odd number of items for a dict".into());
        }
        match self.top()? {
            Value::Dict(d) => {
                let mut d = d.borrow_mut();
                let mut items = items.into_iter();
                while let (Some(k), Some(v)) = (items.next(), items.next()) {
                    d.insert(k, v);
                }
                Ok(())
            }
            // A dict subclass the VM does not model: its items do not matter for weights.
            Value::Object(_) => Ok(()),
            other => Err(format!("SETITEM on {}", other.describe())),
        }
    }

    fn append_items(&mut self, items: Vec<Value>) -> Result<(), String> {
        match self.top()? {
            Value::List(l) => {
                l.borrow_mut().extend(items);
                Ok(())
            }
            Value::Object(_) => Ok(()),
            other => Err(format!("APPEND on {}", other.describe())),
        }
    }

    fn call(&mut self, callable: Value, args: Value) -> Result<Value, String> {
        let Value::Global(global) = &callable else {
            return Err(format!("call of {}", callable.describe()));
        };
        let arg_items = args.items().unwrap_or_default();
        if let Some(value) = self.host.call(global, &arg_items)? {
            return Ok(value);
        }
        if global.is("collections", "OrderedDict") || global.is("builtins", "dict") {
            let dict = Value::Dict(Rc::default());
            if let (Value::Dict(d), Some(pairs)) = (&dict, arg_items.first().and_then(Value::items)) {
                for pair in pairs {
                    match pair.items().as_deref() {
                        Some([k, v]) => d.borrow_mut().insert(k.clone(), v.clone()),
                        _ => return Err("OrderedDict argument is not a list of pairs".into()),
                    }
                }
            }
            return Ok(dict);
        }
        if global.is("_codecs", "encode") {
            // Protocol 2 writes python 3 bytes as _codecs.encode(text, "latin1").
            let text = arg_items
                .first()
                .and_then(Value::as_str)
                .ok_or("_codecs.encode without text")?;
            let bytes: Option<Vec<u8>> = text.chars().map(|c| u8::try_from(c as u32).ok()).collect();
            let bytes = bytes.ok_or("_codecs.encode text is not latin-1")?;
            return Ok(Value::Bytes(bytes.into()));
        }
        Ok(Value::Object(Rc::new(RefCell::new(Object {
            class: callable.clone(),
            args,
            state: Value::None,
        }))))
    }

    /// Executes one opcode; `Ok(true)` at STOP.
    fn step(&mut self, op: u8) -> Result<bool, String> {
        match op {
            0x80 => {
                self.byte()?; // PROTO
            }
            0x95 => {
                self.take(8)?; // FRAME: a length hint only
            }
            b'.' => return Ok(true),
            b'(' => self.marks.push(self.stack.len()),
            b'}' => self.push_container(Value::Dict(Rc::default())),
            b']' | 0x8f => self.push_container(Value::List(Rc::default())),
            b')' => self.stack.push(Value::Tuple(Rc::default())),
            b'N' => self.stack.push(Value::None),
            0x88 => self.stack.push(Value::Bool(true)),
            0x89 => self.stack.push(Value::Bool(false)),
            b'J' => {
                let v = i32::from_le_bytes(self.take(4)?.try_into().unwrap());
                self.stack.push(Value::Int(v as i64));
            }
            b'K' => {
                let v = self.byte()?;
                self.stack.push(Value::Int(v as i64));
            }
            b'M' => {
                let v = self.u16()?;
                self.stack.push(Value::Int(v as i64));
            }
            0x8a => {
                let n = self.byte()? as usize;
                let raw = self.take(n)?;
                self.stack.push(long_from_le(raw));
            }
            0x8b => {
                let n = i32::from_le_bytes(self.take(4)?.try_into().unwrap());
                let n = usize::try_from(n).map_err(|_| "negative LONG4 length")?;
                let raw = self.take(n)?;
                self.stack.push(long_from_le(raw));
            }
            b'G' => {
                let v = f64::from_be_bytes(self.take(8)?.try_into().unwrap());
                self.stack.push(Value::Float(v));
            }
            b'I' | b'L' => {
                let text = self.line()?;
                let value = match text.trim_end_matches('L') {
                    "00" => Value::Bool(false),
                    "01" => Value::Bool(true),
                    t => Value::Int(t.parse().map_err(|_| format!("bad integer text {t:?}"))?),
                };
                self.stack.push(value);
            }
            b'F' => {
                let text = self.line()?;
                let v = text.parse().map_err(|_| format!("bad float text {text:?}"))?;
                self.stack.push(Value::Float(v));
            }
            b'X' => {
                let n = self.u32()? as usize;
                let raw = self.take(n)?;
                self.push_str(raw)?;
            }
            0x8c => {
                let n = self.byte()? as usize;
                let raw = self.take(n)?;
                self.push_str(raw)?;
            }
            0x8d => {
                let n = self.u64_len()?;
                let raw = self.take(n)?;
                self.push_str(raw)?;
            }
            b'T' => {
                let n = i32::from_le_bytes(self.take(4)?.try_into().unwrap());
                let n = usize::try_from(n).map_err(|_| "negative BINSTRING length")?;
                let raw = self.take(n)?;
                self.push_legacy_str(raw);
            }
            b'U' => {
                let n = self.byte()? as usize;
                let raw = self.take(n)?;
                self.push_legacy_str(raw);
            }
            b'B' => {
                let n = self.u32()? as usize;
                let raw = self.take(n)?;
                self.stack.push(Value::Bytes(raw.into()));
            }
            b'C' => {
                let n = self.byte()? as usize;
                let raw = self.take(n)?;
                self.stack.push(Value::Bytes(raw.into()));
            }
            0x8e | 0x96 => {
                let n = self.u64_len()?;
                let raw = self.take(n)?;
                self.stack.push(Value::Bytes(raw.into()));
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.pop()?);
                }
                items.reverse();
                self.stack.push(Value::Tuple(Rc::new(items)));
            }
            b't' => {
                let items = self.pop_mark()?;
                self.stack.push(Value::Tuple(Rc::new(items)));
            }
            b'l' => {
                let items = self.pop_mark()?;
                self.push_container(Value::List(Rc::new(RefCell::new(items))));
            }
            b'd' => {
                let items = self.pop_mark()?;
                self.push_container(Value::Dict(Rc::default()));
                self.set_items(items)?;
            }
            0x91 => {
                let items = self.pop_mark()?;
                self.push_container(Value::List(Rc::new(RefCell::new(items))));
            }
            b's' => {
                let value = self.pop()?;
                let key = self.pop()?;
                self.set_items(vec![key, value])?;
            }
            b'u' => {
                let items = self.pop_mark()?;
                self.set_items(items)?;
            }
            b'a' => {
                let value = self.pop()?;
                self.append_items(vec![value])?;
            }
            b'e' | 0x90 => {
                let items = self.pop_mark()?;
                self.append_items(items)?;
            }
            b'q' => {
                let key = self.byte()? as u32;
                self.memo_put(key)?;
            }
            b'r' => {
                let key = self.u32()?;
                self.memo_put(key)?;
            }
            0x94 => {
                let key = u32::try_from(self.memo.len()).map_err(|_| "memo overflow")?;
                self.memo_put(key)?;
            }
            b'p' => {
                let text = self.line()?;
                let key = text.parse().map_err(|_| format!("bad memo key {text:?}"))?;
                self.memo_put(key)?;
            }
            b'h' => {
                let key = self.byte()? as u32;
                self.memo_get(key)?;
            }
            b'j' => {
                let key = self.u32()?;
                self.memo_get(key)?;
            }
            b'g' => {
                let text = self.line()?;
                let key = text.parse().map_err(|_| format!("bad memo key {text:?}"))?;
                self.memo_get(key)?;
            }
            b'0' => {
                self.pop()?;
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'2' => {
                let top = self.top()?.clone();
                self.stack.push(top);
            }
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                self.stack.push(Value::global(module, name));
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                match (module.as_str(), name.as_str()) {
                    (Some(m), Some(n)) => self.stack.push(Value::global(m, n)),
                    _ => return Err("STACK_GLOBAL needs two strings".into()),
                }
            }
            b'R' => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let value = self.call(callable, args)?;
                self.push_container(value);
            }
            0x81 => {
                let args = self.pop()?;
                let class = self.pop()?;
                let value = self.call(class, args)?;
                self.push_container(value);
            }
            0x92 => {
                let _kwargs = self.pop()?;
                let args = self.pop()?;
                let class = self.pop()?;
                let value = self.call(class, args)?;
                self.push_container(value);
            }
            b'b' => {
                let state = self.pop()?;
                // Only opaque objects keep state; an OrderedDict's `_metadata` or a tensor's
                // python attributes do not change the weights.
                if let Value::Object(o) = self.top()? {
                    o.borrow_mut().state = state;
                }
            }
            b'Q' => {
                let pid = self.pop()?;
                let value = self.host.persistent_load(&pid)?;
                self.stack.push(value);
            }
            b'P' => {
                let text = self.line()?;
                let value = self.host.persistent_load(&Value::Str(text.into()))?;
                self.stack.push(value);
            }
            other => return Err(format!("unsupported opcode 0x{other:02x}")),
        }
        Ok(false)
    }
}

fn long_from_le(raw: &[u8]) -> Value {
    if raw.is_empty() {
        return Value::Int(0);
    }
    let negative = raw[raw.len() - 1] & 0x80 != 0;
    let fill = if negative { 0xFF } else { 0 };
    if raw.len() <= 8 || raw[8..].iter().all(|&b| b == fill) && (raw[7] & 0x80 != 0) == negative {
        let mut buf = [fill; 8];
        let n = raw.len().min(8);
        buf[..n].copy_from_slice(&raw[..n]);
        Value::Int(i64::from_le_bytes(buf))
    } else {
        Value::BigInt(raw.into())
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}
