"""LSTM language models: pytorch/examples word_language_model's RNNModel (time-first), and a batch-first one.

RNNModel is written as in pytorch/examples: ``forward(input, hidden)`` on ``(T, B)`` token ids, returns
``(log_softmax(decoded), hidden)``, trained with ``nll_loss``; the session adapts it with
``Session(output=0, time_first=True, forward_kwargs=...)``. Bugs, the way people make them:
time-first model
- ``batch_as_time``: the session is not told ``time_first=True`` (the LSTM runs over the batch);
- ``bidirectional``: ``bidirectional=True`` in a language model (it reads the future);
- ``reshape_not_transpose``: the decoder output reshaped ``view(B, T, -1)`` from ``(T, B, H)``;
batch-first model
- ``no_batch_first``: ``nn.LSTM`` built without ``batch_first=True`` on ``(B, T, E)`` inputs;
- ``last_state``: every step predicted from the final hidden state ``h_n`` (seq2one head on a seq2seq task);
- ``mean_context``: the initial hidden state computed from the mean of the whole sequence.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

TIME_FIRST_BUGS = ("batch_as_time", "bidirectional", "reshape_not_transpose")
BATCH_FIRST_BUGS = ("no_batch_first", "last_state", "mean_context")


class RNNModel(nn.Module):
    """Container module with an encoder, a recurrent module, and a decoder (pytorch/examples)."""

    def __init__(self, rnn_type, ntoken, ninp, nhid, nlayers, dropout=0.0, tie_weights=False, bug=""):
        super().__init__()
        self.ntoken = ntoken
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = getattr(nn, rnn_type)(ninp, nhid, nlayers, dropout=dropout if nlayers > 1 else 0.0,
                                         bidirectional=bug == "bidirectional")
        self.decoder = nn.Linear(nhid * (2 if bug == "bidirectional" else 1), ntoken)
        if tie_weights:
            self.decoder.weight = self.encoder.weight
        self.init_weights()
        self.rnn_type, self.nhid, self.nlayers, self.bug = rnn_type, nhid, nlayers, bug

    def init_weights(self):
        initrange = 0.1
        nn.init.uniform_(self.encoder.weight, -initrange, initrange)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -initrange, initrange)

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        if self.bug == "reshape_not_transpose":
            output = output.view(output.size(1), output.size(0), -1).transpose(0, 1)
        decoded = self.decoder(output)
        return F.log_softmax(decoded, dim=-1), hidden


def rnn_model(num_classes: int = 23, width: int = 32, bug: str = "") -> RNNModel:
    return RNNModel("LSTM", num_classes, 16, width, 1, dropout=0.1, bug=bug)


class CharLSTM(nn.Module):
    """A batch-first character LSTM: embedding, LSTM, linear head over every step's hidden state."""

    def __init__(self, vocab: int, width: int = 32, bug: str = ""):
        super().__init__()
        self.bug = bug
        self.embed = nn.Embedding(vocab, 16)
        self.lstm = nn.LSTM(16, width, batch_first=bug != "no_batch_first")
        self.head = nn.Linear(width, vocab)
        if bug == "mean_context":
            self.context = nn.Linear(16, width)

    def forward(self, x):
        e = self.embed(x)
        state = None
        if self.bug == "mean_context":
            h0 = torch.tanh(self.context(e.mean(1))).unsqueeze(0)
            state = (h0, torch.zeros_like(h0))
        out, (h_n, _) = self.lstm(e, state)
        if self.bug == "last_state":
            out = h_n[-1].unsqueeze(1).expand(-1, x.shape[1], -1)
        return self.head(out)


def char_lstm(num_classes: int = 23, width: int = 32, bug: str = "") -> CharLSTM:
    return CharLSTM(num_classes, width, bug)
