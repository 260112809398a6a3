//! Just enough of ONNX's protobuf to cut a Piper voice in two: the part that
//! turns phoneme ids into a latent frame sequence (text encoder, duration
//! predictor, flow) and the HiFi-GAN decoder that turns frames into samples.
//!
//! The decoder is a stack of convolutions, so a stretch of frames can be
//! decoded on its own: with enough frames of context on either side (its
//! receptive field, [`Split::context`]) the samples in the middle are the same
//! as from the whole sequence. Cut this way, one sentence's decoding is spread
//! over single-threaded sessions side by side, and its first stretch can be
//! decoded before the rest.
//!
//! Only what the cut needs is read: the graph's nodes (inputs, outputs, name,
//! the attributes of convolutions), its initializers' names, and its inputs and
//! outputs. Every other field is copied byte for byte.

use std::collections::HashSet;

/// The two halves of a voice, as ONNX models, and what joins them.
pub struct Split {
    /// Same inputs as the voice; one output: the frames.
    pub encoder: Vec<u8>,
    /// One input, the frames (`[1, channels, frames]`); the voice's output.
    pub decoder: Vec<u8>,
    /// The tensor between them: the encoder's output and the decoder's input.
    pub frames: String,
    /// Frames of context either side of a stretch for exact samples.
    pub context: usize,
}

type Fail = String;

/// One protobuf field: its number, its value and its bytes as written.
struct Field<'a> {
    num: u64,
    value: Value<'a>,
    raw: &'a [u8],
}

enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

fn varint(buf: &[u8], at: &mut usize) -> Result<u64, Fail> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*at).ok_or("truncated varint")?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint too long".into())
}

/// The fields of one message, in order.
fn fields(buf: &[u8]) -> Result<Vec<Field<'_>>, Fail> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let start = at;
        let key = varint(buf, &mut at)?;
        let value = match key & 7 {
            0 => Value::Varint(varint(buf, &mut at)?),
            1 => {
                at += 8;
                Value::Fixed
            }
            2 => {
                let len = usize::try_from(varint(buf, &mut at)?).map_err(|_| "length")?;
                let end = at.checked_add(len).ok_or("length overflows")?;
                let bytes = buf.get(at..end).ok_or("truncated field")?;
                at = end;
                Value::Bytes(bytes)
            }
            5 => {
                at += 4;
                Value::Fixed
            }
            w => return Err(format!("unsupported wire type {w}")),
        };
        let raw = buf.get(start..at).ok_or("truncated field")?;
        out.push(Field {
            num: key >> 3,
            value,
            raw,
        });
    }
    Ok(out)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, num: u64, bytes: &[u8]) {
    put_varint(out, num << 3 | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// One length-delimited field, key included.
fn field(num: u64, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 8);
    put_bytes(&mut out, num, bytes);
    out
}

fn put_varint_field(out: &mut Vec<u8>, num: u64, v: u64) {
    put_varint(out, num << 3);
    put_varint(out, v);
}

fn text(bytes: &[u8]) -> Result<String, Fail> {
    String::from_utf8(bytes.to_vec()).map_err(|_| "a name is not UTF-8".into())
}

/// The integers of a repeated integer field, written one by one or packed.
fn push_ints(value: &Value<'_>, out: &mut Vec<u64>) -> Result<(), Fail> {
    match value {
        Value::Varint(v) => out.push(*v),
        Value::Bytes(b) => {
            let mut at = 0;
            while at < b.len() {
                out.push(varint(b, &mut at)?);
            }
        }
        Value::Fixed => return Err("an integer list of fixed width".into()),
    }
    Ok(())
}

/// The message inside one field's bytes (key included).
fn inner(raw: &[u8]) -> Result<&[u8], Fail> {
    match fields(raw)?.first().map(|f| &f.value) {
        Some(Value::Bytes(body)) => Ok(body),
        _ => Err("a field is not a message".into()),
    }
}

/// The graph of a model's fields.
fn graph_body<'a>(model: &[Field<'a>]) -> Result<&'a [u8], Fail> {
    match model
        .iter()
        .find(|f| f.num == MODEL_GRAPH)
        .map(|f| &f.value)
    {
        Some(Value::Bytes(body)) => Ok(body),
        _ => Err("the model has no graph".into()),
    }
}

/// The string in field `num` of a message (a name), if any.
fn name_of(msg: &[u8], num: u64) -> Result<Option<String>, Fail> {
    for f in fields(msg)? {
        if let (true, Value::Bytes(b)) = (f.num == num, &f.value) {
            return text(b).map(Some);
        }
    }
    Ok(None)
}

// Field numbers of onnx.proto.
const MODEL_GRAPH: u64 = 7;
const MODEL_OPSET_IMPORT: u64 = 8;
const GRAPH_NODE: u64 = 1;
const GRAPH_INITIALIZER: u64 = 5;
const GRAPH_INPUT: u64 = 11;
const GRAPH_OUTPUT: u64 = 12;
const GRAPH_VALUE_INFO: u64 = 13;
const NODE_INPUT: u64 = 1;
const NODE_OUTPUT: u64 = 2;
const NODE_NAME: u64 = 3;
const NODE_OP_TYPE: u64 = 4;
const NODE_ATTRIBUTE: u64 = 5;
const ATTR_NAME: u64 = 1;
const ATTR_G: u64 = 6;
const ATTR_INTS: u64 = 8;
const ATTR_GRAPHS: u64 = 11;
const ATTR_TYPE: u64 = 20;
const ATTR_TYPE_INTS: u64 = 7;
const TENSOR_DIMS: u64 = 1;
const TENSOR_DATA_TYPE: u64 = 2;
const TENSOR_RAW_DATA: u64 = 9;
const INT64: u64 = 7;
const TENSOR_NAME: u64 = 8;
const VALUE_INFO_NAME: u64 = 1;
const VALUE_INFO_TYPE: u64 = 2;
const TYPE_TENSOR: u64 = 1;
const TENSOR_TYPE_ELEM: u64 = 1;
const TENSOR_TYPE_SHAPE: u64 = 2;
const SHAPE_DIM: u64 = 1;
const DIM_PARAM: u64 = 2;
const FLOAT: u64 = 1;

struct Node<'a> {
    raw: &'a [u8],
    name: String,
    op: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    /// Integer-list attributes by name (kernel_shape, strides, dilations…).
    ints: Vec<(String, Vec<u64>)>,
    /// Holds a subgraph (If, Loop, Scan): its outer references are unknown here.
    nested: bool,
}

fn parse_node<'a>(raw: &'a [u8], body: &'a [u8]) -> Result<Node<'a>, Fail> {
    let mut n = Node {
        raw,
        name: String::new(),
        op: String::new(),
        inputs: Vec::new(),
        outputs: Vec::new(),
        ints: Vec::new(),
        nested: false,
    };
    for f in fields(body)? {
        let Value::Bytes(b) = f.value else { continue };
        match f.num {
            NODE_INPUT => n.inputs.push(text(b)?),
            NODE_OUTPUT => n.outputs.push(text(b)?),
            NODE_NAME => n.name = text(b)?,
            NODE_OP_TYPE => n.op = text(b)?,
            NODE_ATTRIBUTE => {
                let mut name = String::new();
                let mut ints = Vec::new();
                for a in fields(b)? {
                    match (a.num, &a.value) {
                        (ATTR_NAME, Value::Bytes(b)) => name = text(b)?,
                        (ATTR_INTS, v) => push_ints(v, &mut ints)?,
                        (ATTR_G | ATTR_GRAPHS, _) => n.nested = true,
                        _ => {}
                    }
                }
                n.ints.push((name, ints));
            }
            _ => {}
        }
    }
    Ok(n)
}

impl Node<'_> {
    fn attr(&self, name: &str) -> Option<&[u64]> {
        self.ints
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// A graph as read: its nodes in order, initializer names, inputs and
/// outputs (name and bytes), and every other field as written.
struct Graph<'a> {
    nodes: Vec<Node<'a>>,
    initializers: Vec<(String, &'a [u8])>,
    inputs: Vec<(String, &'a [u8])>,
    outputs: Vec<(String, &'a [u8])>,
    rest: Vec<&'a [u8]>,
}

fn parse_graph(body: &[u8]) -> Result<Graph<'_>, Fail> {
    let mut g = Graph {
        nodes: Vec::new(),
        initializers: Vec::new(),
        inputs: Vec::new(),
        outputs: Vec::new(),
        rest: Vec::new(),
    };
    for f in fields(body)? {
        let (num, raw) = (f.num, f.raw);
        let Value::Bytes(b) = f.value else {
            g.rest.push(raw);
            continue;
        };
        let named = |field| -> Result<(String, &[u8]), Fail> {
            Ok((name_of(b, field)?.unwrap_or_default(), raw))
        };
        match num {
            GRAPH_NODE => g.nodes.push(parse_node(raw, b)?),
            GRAPH_INITIALIZER => g.initializers.push(named(TENSOR_NAME)?),
            GRAPH_INPUT => g.inputs.push(named(VALUE_INFO_NAME)?),
            GRAPH_OUTPUT => g.outputs.push(named(VALUE_INFO_NAME)?),
            // Shapes ONNX Runtime infers again; some name tensors cut away.
            GRAPH_VALUE_INFO => {}
            _ => g.rest.push(raw),
        }
    }
    Ok(g)
}

/// A float tensor's `ValueInfoProto` (its fields) of rank `dims.len()`,
/// every dimension named.
fn float_value_info(name: &str, dims: &[&str]) -> Vec<u8> {
    let mut shape = Vec::new();
    for d in dims {
        let mut dim = Vec::new();
        put_bytes(&mut dim, DIM_PARAM, d.as_bytes());
        put_bytes(&mut shape, SHAPE_DIM, &dim);
    }
    let mut tensor = Vec::new();
    put_varint_field(&mut tensor, TENSOR_TYPE_ELEM, FLOAT);
    put_bytes(&mut tensor, TENSOR_TYPE_SHAPE, &shape);
    let mut ty = Vec::new();
    put_bytes(&mut ty, TYPE_TENSOR, &tensor);
    let mut vi = Vec::new();
    put_bytes(&mut vi, VALUE_INFO_NAME, name.as_bytes());
    put_bytes(&mut vi, VALUE_INFO_TYPE, &ty);
    vi
}

impl Graph<'_> {
    /// The graph that computes `outputs` from `stop` (tensors given as
    /// inputs) and the graph's own inputs: the nodes they need, in order, and
    /// the initializers those nodes read. `inputs` and `outputs` are the new
    /// graph's input and output fields, keys included. Also returns every
    /// tensor the new graph reads.
    fn cut(
        &self,
        wanted: &[&str],
        stop: &HashSet<&str>,
        inputs: &[Vec<u8>],
        outputs: &[Vec<u8>],
    ) -> (Vec<u8>, HashSet<String>) {
        let mut needed: HashSet<String> = wanted.iter().map(|s| (*s).to_owned()).collect();
        let mut keep = vec![false; self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate().rev() {
            if n.outputs
                .iter()
                .any(|o| needed.contains(o) && !stop.contains(o.as_str()))
            {
                keep[i] = true;
                for x in &n.inputs {
                    if !x.is_empty() && !stop.contains(x.as_str()) {
                        needed.insert(x.clone());
                    }
                }
            }
        }
        let mut g = Vec::new();
        for (n, _) in self.nodes.iter().zip(&keep).filter(|(_, k)| **k) {
            g.extend_from_slice(n.raw);
        }
        for (name, raw) in &self.initializers {
            if needed.contains(name) {
                g.extend_from_slice(raw);
            }
        }
        for r in &self.rest {
            g.extend_from_slice(r);
        }
        for i in inputs {
            g.extend_from_slice(i);
        }
        for o in outputs {
            g.extend_from_slice(o);
        }
        (g, needed)
    }
}

/// A model with its graph replaced by `graph` (the graph's fields).
fn with_graph(model: &[Field<'_>], graph: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(graph.len() + 4096);
    for f in model {
        if f.num == MODEL_GRAPH {
            put_bytes(&mut out, MODEL_GRAPH, graph);
        } else {
            out.extend_from_slice(f.raw);
        }
    }
    out
}

/// The decoder's receptive field in frames, either side: how far each
/// tensor reaches, followed from the frames through the nodes in order. A
/// convolution adds `(k - 1) / 2 * d` samples at its own rate, an upsampling
/// one `(k - 1) / 2 / stride` samples of its input's; where branches meet
/// (HiFi-GAN's parallel residual blocks) the farthest counts. Rounded up,
/// plus one frame to spare.
fn receptive_field(nodes: &[&Node<'_>], frames: &str) -> usize {
    // Per tensor: (reach in frames, samples per frame).
    let mut reach = std::collections::HashMap::from([(frames, (0f64, 1f64))]);
    let mut widest = 0f64;
    for n in nodes {
        let Some((far, rate)) = n
            .inputs
            .iter()
            .filter_map(|x| reach.get(x.as_str()).copied())
            .reduce(|a, b| (a.0.max(b.0), a.1))
        else {
            continue;
        };
        let first = |name| {
            n.attr(name)
                .and_then(|v| v.first().copied())
                .unwrap_or(1)
                .max(1) as f64
        };
        let k = first("kernel_shape");
        let out = match n.op.as_str() {
            "Conv" => (far + (k - 1.0) / 2.0 * first("dilations") / rate, rate),
            "ConvTranspose" => {
                let s = first("strides");
                (far + (k - 1.0) / 2.0 / s / rate, rate * s)
            }
            _ => (far, rate),
        };
        widest = widest.max(out.0);
        for o in &n.outputs {
            reach.insert(o.as_str(), out);
        }
    }
    widest.ceil() as usize + 1
}

/// Cuts a Piper voice before its decoder (the nodes under `/dec/`, as
/// Piper's exporter names them). `None` when the model is not cut that way:
/// no such nodes, more than one tensor entering them, or nested graphs.
pub fn split(model: &[u8]) -> Result<Option<Split>, Fail> {
    let top = fields(model)?;
    let body = graph_body(&top)?;
    let graph = parse_graph(body)?;
    if graph.nodes.iter().any(|n| n.nested) {
        return Ok(None);
    }
    let dec: Vec<&Node<'_>> = graph
        .nodes
        .iter()
        .filter(|n| n.name.starts_with("/dec/"))
        .collect();
    if dec.is_empty() {
        return Ok(None);
    }
    let made: HashSet<&str> = dec
        .iter()
        .flat_map(|n| n.outputs.iter().map(String::as_str))
        .collect();
    let weights: HashSet<&str> = graph.initializers.iter().map(|(n, _)| n.as_str()).collect();
    let entering: HashSet<&str> = dec
        .iter()
        .flat_map(|n| n.inputs.iter().map(String::as_str))
        .filter(|x| !x.is_empty() && !made.contains(x) && !weights.contains(x))
        .collect();
    let [frames] = entering.into_iter().collect::<Vec<_>>()[..] else {
        return Ok(None);
    };
    let stop = HashSet::from([frames]);
    let outputs: Vec<&str> = graph.outputs.iter().map(|(n, _)| n.as_str()).collect();
    let output_raws: Vec<Vec<u8>> = graph.outputs.iter().map(|(_, r)| r.to_vec()).collect();
    let frames_info = float_value_info(frames, &["batch", "channels", "frames"]);
    let (decoder_graph, needed) = graph.cut(
        &outputs,
        &stop,
        &[field(GRAPH_INPUT, &frames_info)],
        &output_raws,
    );
    // The decoder must need nothing of the voice's inputs but the frames.
    if graph.inputs.iter().any(|(n, _)| needed.contains(n)) {
        return Ok(None);
    }
    let input_raws: Vec<Vec<u8>> = graph.inputs.iter().map(|(_, r)| r.to_vec()).collect();
    let (encoder_graph, _) = graph.cut(
        &[frames],
        &HashSet::new(),
        &input_raws,
        &[field(GRAPH_OUTPUT, &frames_info)],
    );
    Ok(Some(Split {
        encoder: with_graph(&top, &encoder_graph),
        decoder: with_graph(&top, &decoder_graph),
        frames: frames.to_owned(),
        context: receptive_field(&dec, frames),
    }))
}

/// The model with every one-dimensional convolution run as a two-dimensional
/// one of height 1 (`Unsqueeze`, `Conv`, `Squeeze`): ONNX Runtime gives 2-D
/// convolutions its blocked (NCHWc) kernels, which on one thread run a Piper
/// decoder about 10–15 % faster than the 1-D path. (With more threads the
/// 1-D path is the faster: a blocked convolution of height 1 is not split
/// over threads.) Convolutions whose weights are not initializers of rank 3,
/// or are shared with other nodes, are left as they are.
pub fn conv2d(model: &[u8]) -> Result<Vec<u8>, Fail> {
    let top = fields(model)?;
    let body = graph_body(&top)?;
    let axes_as_input = opset(&top)? >= 13;
    let graph = parse_graph(body)?;
    let mut rank = std::collections::HashMap::new();
    for (name, raw) in &graph.initializers {
        rank.insert(name.as_str(), tensor_dims(raw)?.len());
    }
    // Initializers read by anything but the weight slot of a convolution.
    let mut other_uses = HashSet::new();
    for n in &graph.nodes {
        for (i, x) in n.inputs.iter().enumerate() {
            if n.op != "Conv" || i != 1 {
                other_uses.insert(x.as_str());
            }
        }
    }
    let wrap = |n: &Node<'_>| {
        n.op == "Conv"
            && n.inputs.len() >= 2
            && rank.get(n.inputs[1].as_str()) == Some(&3)
            && !other_uses.contains(n.inputs[1].as_str())
    };
    let weights: HashSet<&str> = graph
        .nodes
        .iter()
        .filter(|n| wrap(n))
        .map(|n| n.inputs[1].as_str())
        .collect();
    if weights.is_empty() {
        return Ok(model.to_vec());
    }
    const AXES: &str = "maximin/axis2";
    let mut g = Vec::with_capacity(body.len() + 4096);
    for (k, n) in graph.nodes.iter().enumerate() {
        if !wrap(n) {
            g.extend_from_slice(n.raw);
            continue;
        }
        let x4 = format!("{}/maximin_4d_in_{k}", n.inputs[0]);
        let y4 = format!("{}/maximin_4d_out_{k}", n.outputs[0]);
        let reshape = |op: &str, from: &str, to: &str| {
            let mut m = Vec::new();
            put_bytes(&mut m, NODE_INPUT, from.as_bytes());
            if axes_as_input {
                put_bytes(&mut m, NODE_INPUT, AXES.as_bytes());
            }
            put_bytes(&mut m, NODE_OUTPUT, to.as_bytes());
            put_bytes(
                &mut m,
                NODE_NAME,
                format!("{}/maximin_{op}", n.name).as_bytes(),
            );
            put_bytes(&mut m, NODE_OP_TYPE, op.as_bytes());
            if !axes_as_input {
                let mut a = Vec::new();
                put_bytes(&mut a, ATTR_NAME, b"axes");
                put_varint_field(&mut a, ATTR_INTS, 2);
                put_varint_field(&mut a, ATTR_TYPE, ATTR_TYPE_INTS);
                put_bytes(&mut m, NODE_ATTRIBUTE, &a);
            }
            field(GRAPH_NODE, &m)
        };
        g.extend(reshape("Unsqueeze", &n.inputs[0], &x4));
        g.extend(field(GRAPH_NODE, &conv_node_2d(n, &x4, &y4)?));
        g.extend(reshape("Squeeze", &y4, &n.outputs[0]));
    }
    for (name, raw) in &graph.initializers {
        if weights.contains(name.as_str()) {
            g.extend(field(GRAPH_INITIALIZER, &tensor_2d(raw)?));
        } else {
            g.extend_from_slice(raw);
        }
    }
    if axes_as_input {
        let mut t = Vec::new();
        put_varint_field(&mut t, TENSOR_DIMS, 1);
        put_varint_field(&mut t, TENSOR_DATA_TYPE, INT64);
        put_bytes(&mut t, TENSOR_NAME, AXES.as_bytes());
        put_bytes(&mut t, TENSOR_RAW_DATA, &2i64.to_le_bytes());
        g.extend(field(GRAPH_INITIALIZER, &t));
    }
    for (_, raw) in graph.inputs.iter().chain(&graph.outputs) {
        g.extend_from_slice(raw);
    }
    for r in &graph.rest {
        g.extend_from_slice(r);
    }
    Ok(with_graph(&top, &g))
}

/// The default domain's opset version the model imports.
fn opset(model: &[Field<'_>]) -> Result<u64, Fail> {
    let mut version = 0;
    for f in model.iter().filter(|f| f.num == MODEL_OPSET_IMPORT) {
        let Value::Bytes(b) = f.value else { continue };
        let (mut domain, mut v) = (String::new(), 0);
        for x in fields(b)? {
            match (x.num, x.value) {
                (1, Value::Bytes(d)) => domain = text(d)?,
                (2, Value::Varint(n)) => v = n,
                _ => {}
            }
        }
        if domain.is_empty() || domain == "ai.onnx" {
            version = v;
        }
    }
    Ok(version)
}

/// A tensor's dims (the field bytes of a `TensorProto`, key included).
fn tensor_dims(raw: &[u8]) -> Result<Vec<u64>, Fail> {
    let mut dims = Vec::new();
    for f in fields(inner(raw)?)? {
        if f.num == TENSOR_DIMS {
            push_ints(&f.value, &mut dims)?;
        }
    }
    Ok(dims)
}

/// A rank-3 weight `[out, in, k]` as `[out, in, 1, k]` (the same bytes).
fn tensor_2d(raw: &[u8]) -> Result<Vec<u8>, Fail> {
    let [o, i, k] = tensor_dims(raw)?[..] else {
        return Err("a 1-D convolution's weights are not of rank 3".into());
    };
    let body = inner(raw)?;
    let mut t = Vec::with_capacity(body.len() + 16);
    for d in [o, i, 1, k] {
        put_varint_field(&mut t, TENSOR_DIMS, d);
    }
    for f in fields(body)? {
        if f.num != TENSOR_DIMS {
            t.extend_from_slice(f.raw);
        }
    }
    Ok(t)
}

/// A 1-D `Conv` node as a 2-D one reading `x` and writing `y`: a leading 1
/// for kernel, strides and dilations, a leading 0 for both ends of the pads.
fn conv_node_2d(n: &Node<'_>, x: &str, y: &str) -> Result<Vec<u8>, Fail> {
    let body = inner(n.raw)?;
    let mut m = Vec::with_capacity(body.len() + 32);
    let (mut first_in, mut first_out) = (true, true);
    for f in fields(body)? {
        match (f.num, &f.value) {
            (NODE_INPUT, _) if first_in => {
                first_in = false;
                put_bytes(&mut m, NODE_INPUT, x.as_bytes());
            }
            (NODE_OUTPUT, _) if first_out => {
                first_out = false;
                put_bytes(&mut m, NODE_OUTPUT, y.as_bytes());
            }
            (NODE_ATTRIBUTE, Value::Bytes(a)) => {
                let name = name_of(a, ATTR_NAME)?.unwrap_or_default();
                let ints = n.attr(&name).unwrap_or_default();
                let new: Vec<u64> = match (name.as_str(), ints) {
                    ("kernel_shape" | "strides" | "dilations", _) => {
                        std::iter::once(1).chain(ints.iter().copied()).collect()
                    }
                    // [begin, end] → [0, begin, 0, end].
                    ("pads", [begin, end]) => vec![0, *begin, 0, *end],
                    _ => {
                        m.extend_from_slice(f.raw);
                        continue;
                    }
                };
                let mut attr = Vec::new();
                put_bytes(&mut attr, ATTR_NAME, name.as_bytes());
                for v in new {
                    put_varint_field(&mut attr, ATTR_INTS, v);
                }
                put_varint_field(&mut attr, ATTR_TYPE, ATTR_TYPE_INTS);
                put_bytes(&mut m, NODE_ATTRIBUTE, &attr);
            }
            _ => m.extend_from_slice(f.raw),
        }
    }
    Ok(m)
}

/// A float initializer of a model: its name, dims and values.
pub struct Weight {
    pub name: String,
    pub dims: Vec<i64>,
    pub values: Vec<f32>,
}

/// The model's float initializers of at least `min_values` values stored
/// as raw data (a voice's weights: every convolution's and embedding's),
/// for sessions that share one copy of them. Smaller tensors (shapes,
/// axes, scalars) stay in the graph, where ONNX Runtime folds them.
pub fn weights(model: &[u8], min_values: usize) -> Result<Vec<Weight>, Fail> {
    let top = fields(model)?;
    let graph = parse_graph(graph_body(&top)?)?;
    let mut out = Vec::new();
    for (name, raw) in &graph.initializers {
        let (mut dims, mut kind, mut data) = (Vec::new(), 0, None);
        for f in fields(inner(raw)?)? {
            match (f.num, &f.value) {
                (TENSOR_DIMS, _) => push_ints(&f.value, &mut dims)?,
                (TENSOR_DATA_TYPE, Value::Varint(k)) => kind = *k,
                (TENSOR_RAW_DATA, Value::Bytes(b)) => data = Some(*b),
                _ => {}
            }
        }
        let Some(data) = data.filter(|_| kind == FLOAT) else {
            continue;
        };
        let count = dims.iter().product::<u64>() as usize;
        if count < min_values || data.len() != count * 4 {
            continue;
        }
        out.push(Weight {
            name: name.clone(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            values: data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(
        name: &str,
        op: &str,
        inputs: &[&str],
        outputs: &[&str],
        ints: &[(&str, &[u64])],
    ) -> Vec<u8> {
        let mut n = Vec::new();
        for i in inputs {
            put_bytes(&mut n, NODE_INPUT, i.as_bytes());
        }
        for o in outputs {
            put_bytes(&mut n, NODE_OUTPUT, o.as_bytes());
        }
        put_bytes(&mut n, NODE_NAME, name.as_bytes());
        put_bytes(&mut n, NODE_OP_TYPE, op.as_bytes());
        for (a, vs) in ints {
            let mut attr = Vec::new();
            put_bytes(&mut attr, ATTR_NAME, a.as_bytes());
            for v in *vs {
                put_varint_field(&mut attr, ATTR_INTS, *v);
            }
            put_bytes(&mut n, NODE_ATTRIBUTE, &attr);
        }
        field(GRAPH_NODE, &n)
    }

    fn initializer(name: &str, dims: &[u64]) -> Vec<u8> {
        let mut t = Vec::new();
        for d in dims {
            put_varint_field(&mut t, TENSOR_DIMS, *d);
        }
        put_bytes(&mut t, TENSOR_NAME, name.as_bytes());
        put_bytes(&mut t, 9, &[0u8; 16]); // raw_data
        field(GRAPH_INITIALIZER, &t)
    }

    /// A Piper-shaped model: ids → `/enc_p` → frames → `/dec` (a
    /// convolution, an upsampling, a convolution) → `/Unsqueeze` → output.
    fn model() -> Vec<u8> {
        let mut g = Vec::new();
        g.extend(node(
            "/enc_p/Gather",
            "Gather",
            &["emb", "input"],
            &["h"],
            &[],
        ));
        g.extend(node("/Mul", "Mul", &["h", "scales"], &["z"], &[]));
        g.extend(node(
            "/dec/conv_pre/Conv",
            "Conv",
            &["z", "w_pre"],
            &["a"],
            &[("kernel_shape", &[7]), ("dilations", &[1])],
        ));
        g.extend(node(
            "/dec/ups.0/ConvTranspose",
            "ConvTranspose",
            &["a", "w_up"],
            &["b"],
            &[("kernel_shape", &[16]), ("strides", &[8])],
        ));
        g.extend(node(
            "/dec/convs.0/Conv",
            "Conv",
            &["b", "w_res"],
            &["c"],
            &[("kernel_shape", &[7]), ("dilations", &[12])],
        ));
        // A parallel branch that reaches less far, as HiFi-GAN's blocks.
        g.extend(node(
            "/dec/convs.1/Conv",
            "Conv",
            &["b", "w_res2"],
            &["c2"],
            &[("kernel_shape", &[7]), ("dilations", &[3])],
        ));
        g.extend(node("/dec/Add", "Add", &["c", "c2"], &["d"], &[]));
        g.extend(node("/enc_p/Constant", "Constant", &[], &["axis"], &[]));
        g.extend(node(
            "/Unsqueeze",
            "Unsqueeze",
            &["d", "axis"],
            &["output"],
            &[],
        ));
        for (w, dims) in [
            ("emb", &[100, 3][..]),
            ("w_pre", &[4, 3, 7]),
            ("w_up", &[4, 4, 16]),
            ("w_res", &[4, 4, 7]),
            ("w_res2", &[4, 4, 7]),
        ] {
            g.extend(initializer(w, dims));
        }
        g.extend(field(2, b"main_graph"));
        for i in ["input", "scales"] {
            g.extend(field(GRAPH_INPUT, &float_value_info(i, &["n"])));
        }
        g.extend(field(GRAPH_OUTPUT, &float_value_info("output", &["n"])));
        g.extend(field(GRAPH_VALUE_INFO, &float_value_info("h", &["n"])));
        let mut m = Vec::new();
        put_varint_field(&mut m, 1, 8); // ir_version
        put_bytes(&mut m, MODEL_GRAPH, &g);
        put_bytes(&mut m, MODEL_OPSET_IMPORT, b"\x10\x0f"); // opset 15
        m
    }

    /// What a test reads back of a model.
    struct Seen {
        model_fields: Vec<u64>,
        nodes: Vec<String>,
        initializers: Vec<String>,
        inputs: Vec<String>,
        outputs: Vec<String>,
    }

    fn graph_of(model: &[u8]) -> Seen {
        let top = fields(model).expect("model");
        let g = parse_graph(graph_body(&top).expect("graph")).expect("graph parses");
        let names = |v: &[(String, &[u8])]| v.iter().map(|(n, _)| n.clone()).collect();
        Seen {
            model_fields: top.iter().map(|f| f.num).collect(),
            nodes: g.nodes.iter().map(|n| n.name.clone()).collect(),
            initializers: names(&g.initializers),
            inputs: names(&g.inputs),
            outputs: names(&g.outputs),
        }
    }

    #[test]
    fn a_piper_graph_is_cut_before_its_decoder() {
        let s = split(&model()).expect("parses").expect("cut");
        assert_eq!(s.frames, "z");
        let enc = graph_of(&s.encoder);
        assert_eq!(
            enc.model_fields,
            vec![1, MODEL_GRAPH, 8],
            "other model fields kept in place"
        );
        assert_eq!(enc.nodes, ["/enc_p/Gather", "/Mul"]);
        assert_eq!(enc.initializers, ["emb"]);
        assert_eq!(enc.inputs, ["input", "scales"]);
        assert_eq!(enc.outputs, ["z"]);

        let dec = graph_of(&s.decoder);
        assert_eq!(
            dec.nodes,
            [
                "/dec/conv_pre/Conv",
                "/dec/ups.0/ConvTranspose",
                "/dec/convs.0/Conv",
                "/dec/convs.1/Conv",
                "/dec/Add",
                "/enc_p/Constant",
                "/Unsqueeze"
            ]
        );
        assert_eq!(dec.initializers, ["w_pre", "w_up", "w_res", "w_res2"]);
        assert_eq!(dec.inputs, ["z"]);
        assert_eq!(dec.outputs, ["output"]);
        // 3 frames (kernel 7), 15/16 (kernel 16, stride 8), then the farther
        // branch: 36 samples at 8 per frame (kernel 7, dilation 12): 8.4,
        // rounded up, and 1 spare. (Adding the other branch's 9 would be 11.)
        assert_eq!(s.context, 10);
    }

    #[test]
    fn one_dimensional_convolutions_become_two_dimensional() {
        let m = conv2d(&model()).expect("rewritten");
        let top = fields(&m).expect("model");
        let g = parse_graph(graph_body(&top).expect("graph")).expect("graph parses");
        let ops: Vec<&str> = g.nodes.iter().map(|n| n.op.as_str()).collect();
        assert_eq!(
            ops,
            [
                "Gather",
                "Mul",
                "Unsqueeze",
                "Conv",
                "Squeeze",
                "ConvTranspose",
                "Unsqueeze",
                "Conv",
                "Squeeze",
                "Unsqueeze",
                "Conv",
                "Squeeze",
                "Add",
                "Constant",
                "Unsqueeze"
            ]
        );
        let conv = &g.nodes[3];
        assert_eq!(g.nodes[2].outputs, [conv.inputs[0].clone()]);
        assert_eq!(g.nodes[2].inputs[0], "z");
        assert_eq!(g.nodes[4].inputs[0], conv.outputs[0]);
        assert_eq!(g.nodes[4].outputs, ["a"], "the 1-D tensor keeps its name");
        assert_eq!(conv.attr("kernel_shape"), Some(&[1, 7][..]));
        assert_eq!(conv.attr("dilations"), Some(&[1, 1][..]));
        let res = &g.nodes[7];
        assert_eq!(res.attr("dilations"), Some(&[1, 12][..]));
        // The weights gain a height of 1; the upsampling's are left alone.
        let dims = |name: &str| {
            let (_, raw) = g.initializers.iter().find(|(n, _)| n == name).expect(name);
            tensor_dims(raw).expect("dims")
        };
        assert_eq!(dims("w_pre"), [4, 3, 1, 7]);
        assert_eq!(dims("w_res"), [4, 4, 1, 7]);
        assert_eq!(dims("w_up"), [4, 4, 16]);
        assert_eq!(dims("maximin/axis2"), [1]);
        // Opset 13 and later take the axes as an input.
        assert_eq!(g.nodes[2].inputs[1], "maximin/axis2");
    }

    #[test]
    fn graphs_that_are_not_cut_that_way_are_left_whole() {
        // No decoder nodes.
        let mut g = Vec::new();
        g.extend(node(
            "/enc_p/Gather",
            "Gather",
            &["emb", "input"],
            &["output"],
            &[],
        ));
        let mut m = Vec::new();
        put_bytes(&mut m, MODEL_GRAPH, &g);
        assert!(split(&m).expect("parses").is_none());
        // A decoder that reads a voice input directly (besides the frames).
        let mut g = Vec::new();
        g.extend(node("/Mul", "Mul", &["input", "scales"], &["z"], &[]));
        g.extend(node("/dec/Add", "Add", &["z", "scales"], &["output"], &[]));
        for i in ["input", "scales"] {
            g.extend(field(GRAPH_INPUT, &float_value_info(i, &["n"])));
        }
        let mut m = Vec::new();
        put_bytes(&mut m, MODEL_GRAPH, &g);
        assert!(split(&m).expect("parses").is_none());
        // Not protobuf at all.
        assert!(split(&[0xff, 0xff, 0xff]).is_err());
    }
}
