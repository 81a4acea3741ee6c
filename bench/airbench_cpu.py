"""airbench94 itself (PyTorch) on this CPU and the pipeline's split: the reference for our Keras port.

    pip install torch==2.13.0                 # the CPU build; not in requirements.txt
    python -m bench.airbench_cpu --epochs 24  # after dvc repro preprocess: reads data/prepared/rgb.npz

airbench 0.1.8's airbench94 (Jordan 2024), copied because the package only runs on CUDA: its
network, hyperparameters, whitening, lookahead, alternating flip and test-time augmentation,
verbatim, in bfloat16 autocast on the CPU. It trains on the 40,000 training images and prints
validation and test accuracy without and with its test-time augmentation. `Airbench94` trains
one epoch per call, so that bench.race can take turns with our trainers in the same process.
"""

import argparse
import copy
import time
from math import ceil

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

hyp = dict(
    batch_size=1024,
    lr=11.5,
    momentum=0.85,
    weight_decay=0.0153,
    bias_scaler=64.0,
    label_smoothing=0.2,
    whiten_bias_epochs=3,
    translate=2,
    widths=(64, 256, 256),
    batchnorm_momentum=0.6,
    scaling_factor=1 / 9,
)
EPOCHS = 9.9  # airbench94's own length
MEAN = torch.tensor((0.4914, 0.4822, 0.4465)).view(1, 3, 1, 1)
STD = torch.tensor((0.2470, 0.2435, 0.2616)).view(1, 3, 1, 1)


def tensor(data, split):
    x = torch.tensor(data[f"x_{split}"]).float().div(255).permute(0, 3, 1, 2)
    return ((x - MEAN) / STD).contiguous(memory_format=torch.channels_last), torch.tensor(data[f"y_{split}"])


class Mul(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return x * self.scale


class BatchNorm(nn.BatchNorm2d):
    def __init__(self, num_features, momentum):
        super().__init__(num_features, eps=1e-12, momentum=1 - momentum)
        self.weight.requires_grad = False


class Conv(nn.Conv2d):
    def __init__(self, cin, cout, kernel_size=3, padding="same", bias=False):
        super().__init__(cin, cout, kernel_size=kernel_size, padding=padding, bias=bias)

    def reset_parameters(self):
        super().reset_parameters()
        if self.bias is not None:
            self.bias.data.zero_()
        w = self.weight.data
        torch.nn.init.dirac_(w[: w.size(1)])


class ConvGroup(nn.Module):
    def __init__(self, cin, cout, m):
        super().__init__()
        self.conv1, self.pool, self.norm1 = Conv(cin, cout), nn.MaxPool2d(2), BatchNorm(cout, m)
        self.conv2, self.norm2, self.activ = Conv(cout, cout), BatchNorm(cout, m), nn.GELU()

    def forward(self, x):
        x = self.activ(self.norm1(self.pool(self.conv1(x))))
        return self.activ(self.norm2(self.conv2(x)))


def make_net():
    w, m = hyp["widths"], hyp["batchnorm_momentum"]
    net = nn.Sequential(
        Conv(3, 24, 2, padding=0, bias=True),
        nn.GELU(),
        ConvGroup(24, w[0], m),
        ConvGroup(w[0], w[1], m),
        ConvGroup(w[1], w[2], m),
        nn.MaxPool2d(3),
        nn.Flatten(),
        nn.Linear(w[2], 10, bias=False),
        Mul(hyp["scaling_factor"]),
    )
    net[0].weight.requires_grad = False
    return net.to(memory_format=torch.channels_last)


def init_whitening_conv(layer, images, eps=5e-4):
    c, (h, w) = images.shape[1], layer.weight.shape[2:]
    patches = images.unfold(2, h, 1).unfold(3, w, 1).transpose(1, 3).reshape(-1, c, h, w).float()
    flat = patches.view(len(patches), -1)
    eigenvalues, eigenvectors = torch.linalg.eigh(flat.T @ flat / len(flat), UPLO="U")
    eigenvalues, eigenvectors = (
        eigenvalues.flip(0).view(-1, 1, 1, 1),
        eigenvectors.T.reshape(c * h * w, c, h, w).flip(0),
    )
    scaled = eigenvectors / torch.sqrt(eigenvalues + eps)
    layer.weight.data[:] = torch.cat((scaled, -scaled))


class Airbench94:
    """airbench94's training on `data` (the prepared arrays), one epoch per `train_epoch` call."""

    def __init__(self, data, epochs=EPOCHS, bfloat16=True, seed=0):
        torch.manual_seed(seed)
        self.dtype, self.epochs = torch.bfloat16 if bfloat16 else None, epochs
        self.x_train, self.y_train = tensor(data, "train")
        self.splits = {split: tensor(data, split) for split in ("val", "test")}
        bs, momentum = hyp["batch_size"], hyp["momentum"]
        kilostep_scale = 1024 * (1 + 1 / (1 - momentum))
        lr, wd = hyp["lr"] / kilostep_scale, hyp["weight_decay"] * bs / kilostep_scale
        lr_biases = lr * hyp["bias_scaler"]
        self.steps_per_epoch = len(self.x_train) // bs
        self.total = ceil(self.steps_per_epoch * epochs)
        self.net = make_net()
        norm_biases = [p for k, p in self.net.named_parameters() if "norm" in k and p.requires_grad]
        others = [p for k, p in self.net.named_parameters() if "norm" not in k and p.requires_grad]
        self.optimizer = torch.optim.SGD(
            [
                dict(params=norm_biases, lr=lr_biases, weight_decay=wd / lr_biases),
                dict(params=others, lr=lr, weight_decay=wd / lr),
            ],
            momentum=momentum,
            nesterov=True,
        )
        xp, fp = [0, int(0.23 * self.total), self.total], [0.2, 1.0, 0.07]
        schedule = np.interp(np.arange(self.total + 1), xp, fp)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda i: schedule[i])
        self.alpha = 0.95**5 * (np.arange(self.total + 1) / self.total) ** 3
        self.slow = {k: v.clone() for k, v in self.net.state_dict().items()}
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=hyp["label_smoothing"], reduction="none")
        self.epochs_done, self.step = 0, 0

    @property
    def done(self):
        return self.step >= self.total

    def autocast(self):
        return torch.autocast("cpu", dtype=self.dtype) if self.dtype else torch.autocast("cpu", enabled=False)

    def warm_up(self, steps=2):
        """Train a throwaway copy for a few steps, so that the first timed epoch creates no kernels."""
        net = copy.deepcopy(self.net).train()
        optimizer = torch.optim.SGD(net.parameters(), lr=0.0)
        batch = self.x_train[: hyp["batch_size"]]
        for _ in range(steps):
            with self.autocast():
                loss = self.loss_fn(net(batch).float(), self.y_train[: len(batch)]).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    def lookahead(self, decay):
        for (_k, s), v in zip(self.slow.items(), self.net.state_dict().values(), strict=True):
            if v.dtype in (torch.half, torch.float):
                s.lerp_(v, 1 - decay)
                v.copy_(s)

    def train_epoch(self):
        """One epoch (the first also whitens and pads the data, within airbench's timing); returns images trained."""
        epoch, bs, pad = self.epochs_done, hyp["batch_size"], hyp["translate"]
        if epoch == 0:
            init_whitening_conv(self.net[0], self.x_train[:5000])
            flipped = torch.where(
                (torch.rand(len(self.x_train)) < 0.5).view(-1, 1, 1, 1), self.x_train.flip(-1), self.x_train
            )
            self.padded = F.pad(flipped, (pad,) * 4, "reflect")
        self.net[0].bias.requires_grad = epoch < hyp["whiten_bias_epochs"]
        shifts = torch.randint(-pad, pad + 1, size=(len(self.x_train), 2))
        images = torch.empty_like(self.x_train)
        for sy in range(-pad, pad + 1):
            for sx in range(-pad, pad + 1):
                mask = (shifts[:, 0] == sy) & (shifts[:, 1] == sx)
                images[mask] = self.padded[mask, :, pad + sy : pad + sy + 32, pad + sx : pad + sx + 32]
        if epoch % 2 == 1:
            images = images.flip(-1)
        order = torch.randperm(len(images))
        self.net.train()
        trained = 0
        for i in range(self.steps_per_epoch):
            idx = order[i * bs : (i + 1) * bs]
            with self.autocast():
                outputs = self.net(images[idx].contiguous(memory_format=torch.channels_last))
                loss = self.loss_fn(outputs.float(), self.y_train[idx]).sum()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            trained += len(idx)
            if self.step % 5 == 0:
                self.lookahead(self.alpha[self.step])
            if self.done:
                self.lookahead(1.0)
                break
        self.epochs_done += 1
        self.last_batch = (outputs, self.y_train[idx], loss.item() / bs)
        return trained

    def infer(self, images):
        def mirror(x):
            return 0.5 * self.net(x) + 0.5 * self.net(x.flip(-1))

        self.net.eval()
        outs = {"none": [], "tta": []}
        with torch.no_grad(), self.autocast():
            for x in images.split(1000):
                base = self.net(x).float()
                logits = 0.5 * base + 0.5 * self.net(x.flip(-1)).float()
                padded = F.pad(x, (1,) * 4, "reflect")
                shifted = [mirror(padded[:, :, 0:32, 0:32]).float(), mirror(padded[:, :, 2:34, 2:34]).float()]
                outs["none"].append(base)
                outs["tta"].append(0.5 * logits + 0.5 * torch.stack(shifted).mean(0))
        return {k: torch.cat(v) for k, v in outs.items()}

    def accuracy(self, split):
        """{"none": accuracy on `split` (val or test), "tta": with airbench's test-time augmentation}."""
        x, y = self.splits[split]
        return {k: (v.argmax(1) == y).float().mean().item() for k, v in self.infer(x).items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=float, default=EPOCHS)
    parser.add_argument("--float32", action="store_true", help="no bfloat16 autocast")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default="data/prepared/rgb.npz")
    args = parser.parse_args()
    trainer = Airbench94(np.load(args.data), args.epochs, bfloat16=not args.float32, seed=args.seed)
    started, train_time = time.perf_counter(), 0.0
    while not trainer.done:
        t0 = time.perf_counter()
        trainer.train_epoch()
        seconds = time.perf_counter() - t0
        train_time += seconds
        outputs, labels, loss = trainer.last_batch
        train_acc = (outputs.argmax(1) == labels).float().mean().item()
        print(
            f"epoch {trainer.epochs_done}: {seconds:.0f} s, train batch acc {train_acc:.4f}, "
            f"loss {loss:.4f}, train time so far {train_time / 60:.1f} min",
            flush=True,
        )
    print(
        f"trained {args.epochs} epochs in {train_time / 60:.1f} min (wall {(time.perf_counter() - started) / 60:.1f})"
    )
    for split in ("val", "test"):
        print(split, trainer.accuracy(split), flush=True)


if __name__ == "__main__":
    main()
