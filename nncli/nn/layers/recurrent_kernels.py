"""The numpy kernels of the fused recurrences: a loop over time forward, back-propagation
through time backward (SimpleRNN, LSTM, GRU with reset_after).

Each ``_*_run(attrs, *inputs)`` returns the op's output; each ``_*_grads(attrs, *inputs, output,
upstream)`` returns the gradient of every input, in order. ``attrs`` names the activations, keys
into ``FUSED_ACTIVATIONS``. The primitives wrapping them are in ``nncli.nn.layers.recurrent``.
"""

from __future__ import annotations

import numpy as np

import nncli.autodiff as ad

_sigmoid = ad.ops.sigmoid  # the engine's two-branch sigmoid on arrays


# name -> (activation on arrays, its derivative from the activation's output y, written into out)
FUSED_ACTIVATIONS = {
    "tanh": (np.tanh, lambda y, out: np.subtract(1, np.multiply(y, y, out=out), out=out)),
    "sigmoid": (_sigmoid, lambda y, out: np.multiply(np.subtract(1, y, out=out), y, out=out)),
    "relu": (lambda z: np.maximum(z, 0), lambda y, out: np.greater(y, 0, out=out)),
    "linear": (lambda z: z, lambda y, out: out.fill(1) or out),  # fill() returns None
}


def _shifted(h0, H):
    """The state entering each step: (b, T, u) = [h0, H[:, :-1]]."""
    return np.concatenate([h0[:, None, :], H[:, :-1]], axis=1)


def _weight_grad(inputs, D):
    """sum over batch and time of inputs_t^T @ D_t: one matmul."""
    return inputs.reshape(-1, inputs.shape[-1]).T @ D.reshape(-1, D.shape[-1])


# -- SimpleRNN: h_t = act(xw_t + h_{t-1} @ U); inputs (xw, U, h0) -> H ---------------


def _rnn_run(attrs, xw, U, h0):
    act = FUSED_ACTIVATIONS[attrs[0]][0]
    H = np.empty_like(xw)  # (b, T, u)
    h = h0
    for t in range(xw.shape[1]):
        h = act(xw[:, t] + h @ U)
        H[:, t] = h
    return H


def _rnn_grads(attrs, xw, U, h0, H, G):
    D = FUSED_ACTIVATIONS[attrs[0]][1](H, np.empty_like(H))  # act' at every step, from the outputs
    DA = np.empty_like(xw)  # (b, T, u): dL/d(pre-activation)
    dh, UT = np.zeros_like(h0), np.ascontiguousarray(U.T)  # dL/dh_t from later steps
    for t in range(xw.shape[1] - 1, -1, -1):
        np.multiply(G[:, t] + dh, D[:, t], out=DA[:, t])
        dh = DA[:, t] @ UT
    return DA, _weight_grad(_shifted(h0, H), DA), dh


# -- LSTM, gates i, f, c, o: inputs (xw, U, h0, c0) -> Y = [H | C | gates] (b, T, 6u) ---
# (the gates are kept in the output so that backward need not recompute them)


def _lstm_gates(z, act, ract, u):
    gates = ract(z)  # i, f, o (the c slice is overwritten)
    gates[..., 2 * u:3 * u] = act(z[..., 2 * u:3 * u])
    return gates


def _lstm_run(attrs, xw, U, h0, c0):
    act, ract = (FUSED_ACTIVATIONS[a][0] for a in attrs)
    b, T, four_u = xw.shape
    u = four_u // 4
    Y = np.empty((b, T, 6 * u), dtype=xw.dtype)
    h, c = h0, c0
    for t in range(T):
        g = _lstm_gates(xw[:, t] + h @ U, act, ract, u)
        c = g[:, u:2 * u] * c + g[:, :u] * g[:, 2 * u:3 * u]
        h = g[:, 3 * u:] * act(c)
        Y[:, t, :u], Y[:, t, u:2 * u], Y[:, t, 2 * u:] = h, c, g
    return Y


def _lstm_grads(attrs, xw, U, h0, c0, Y, G):
    (act, dact), (ract, dract) = (FUSED_ACTIVATIONS[a] for a in attrs)
    b, T, four_u = xw.shape
    u = four_u // 4
    H, C, A = Y[..., :u], Y[..., u:2 * u], Y[..., 2 * u:]  # A: (b, T, 4u) gates of all steps
    Hp, Cp = _shifted(h0, H), _shifted(c0, C)
    TC = act(C)
    D = dract(A, np.empty_like(A))  # gate derivatives, then times what each gate multiplies
    dact(A[..., 2 * u:3 * u], D[..., 2 * u:3 * u])
    D[..., :u] *= A[..., 2 * u:3 * u]  # i multiplies the candidate
    D[..., u:2 * u] *= Cp  # f multiplies the previous cell
    D[..., 2 * u:3 * u] *= A[..., :u]  # the candidate is multiplied by i
    D[..., 3 * u:] *= TC  # o multiplies act(c)
    OD = dact(TC, np.empty_like(TC))  # dc += dh * o * act'(c)
    OD *= A[..., 3 * u:]
    forget = A[..., u:2 * u]
    DZ = np.empty_like(xw)
    D4, DZ4 = D.reshape(b, T, 4, u), DZ.reshape(b, T, 4, u)  # views: one row per gate
    dh, dc, UT = np.zeros_like(h0), np.zeros_like(c0), np.ascontiguousarray(U.T)
    for t in range(T - 1, -1, -1):
        dh = G[:, t, :u] + dh
        dc = G[:, t, u:2 * u] + dc + dh * OD[:, t]
        np.multiply(D4[:, t, :3], dc[:, None, :], out=DZ4[:, t, :3])  # i, f, candidate
        np.multiply(D4[:, t, 3], dh, out=DZ4[:, t, 3])  # o
        dh = DZ[:, t] @ UT
        dc = dc * forget[:, t]
    return DZ, _weight_grad(Hp, DZ), dh, dc


# -- GRU (reset_after), gates z, r, h: inputs (xw, U, recurrent bias, h0) -> H ---------
# rec = h @ U + br; z, r = ract(xw_zr + rec_zr); hh = act(xw_h + r * rec_h); h = z * h + (1 - z) * hh


def _gru_run(attrs, xw, U, br, h0):
    act, ract = (FUSED_ACTIVATIONS[a][0] for a in attrs)
    b, T, three_u = xw.shape
    u = three_u // 3
    H = np.empty((b, T, u), dtype=xw.dtype)
    h = h0
    for t in range(T):
        rec = h @ U + br
        zr = ract(xw[:, t, :2 * u] + rec[:, :2 * u])
        hh = act(xw[:, t, 2 * u:] + zr[:, u:] * rec[:, 2 * u:])
        h = hh + zr[:, :u] * (h - hh)
        H[:, t] = h
    return H


def _gru_grads(attrs, xw, U, br, h0, H, G):
    (act, dact), (ract, dract) = (FUSED_ACTIVATIONS[a] for a in attrs)
    b, T, three_u = xw.shape
    u = three_u // 3
    Hp = _shifted(h0, H)
    REC = (Hp.reshape(-1, u) @ U).reshape(xw.shape) + br  # (b, T, 3u) all steps at once
    ZR = ract(xw[..., :2 * u] + REC[..., :2 * u])
    Z, R = ZR[..., :u], ZR[..., u:]
    HH = act(xw[..., 2 * u:] + R * REC[..., 2 * u:])
    dZR = dract(ZR, np.empty_like(ZR))
    to_hh = dact(HH, np.empty_like(HH))  # dh -> d(candidate pre-activation)
    to_hh *= 1 - Z
    to_z = np.subtract(Hp, HH)  # dh -> d(z pre-activation)
    to_z *= dZR[..., :u]
    to_r = np.multiply(REC[..., 2 * u:], dZR[..., u:])  # d(candidate pre-act.) -> d(r pre-activation)
    DX = np.empty_like(xw)  # dL/d(xw)
    DREC = np.empty_like(xw)  # dL/d(rec)
    dh, UT = np.zeros_like(h0), np.ascontiguousarray(U.T)
    for t in range(T - 1, -1, -1):
        dh = G[:, t] + dh
        dx, drec = DX[:, t], DREC[:, t]
        np.multiply(dh, to_z[:, t], out=dx[:, :u])
        np.multiply(dh, to_hh[:, t], out=dx[:, 2 * u:])
        np.multiply(dx[:, 2 * u:], to_r[:, t], out=dx[:, u:2 * u])
        drec[:, :2 * u] = dx[:, :2 * u]
        np.multiply(dx[:, 2 * u:], R[:, t], out=drec[:, 2 * u:])
        dh = dh * Z[:, t] + drec @ UT
    return DX, _weight_grad(Hp, DREC), DREC.sum(axis=(0, 1)), dh
