"""airbench94 itself (PyTorch) on this CPU and the pipeline's split: the reference for our Keras port.

    pip install torch --index-url https://download.pytorch.org/whl/cpu   # not in requirements.txt
    python bench/airbench_cpu.py --epochs 24      # after dvc repro: reads data/prepared/rgb.npz

airbench 0.1.8's airbench94 (Jordan 2024), copied because the package only runs on CUDA: its
network, hyperparameters, whitening, lookahead, alternating flip and test-time augmentation,
verbatim, in bfloat16 autocast on the CPU. It trains on the 40,000 training images and prints
validation and test accuracy without and with its test-time augmentation.
"""
import argparse
import time
from math import ceil

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=float, default=9.9)
parser.add_argument("--float32", action="store_true", help="no bfloat16 autocast")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--data", default="data/prepared/rgb.npz")
args = parser.parse_args()
EPOCHS, DTYPE = args.epochs, None if args.float32 else torch.bfloat16
torch.manual_seed(args.seed)

hyp = dict(batch_size=1024, lr=11.5, momentum=0.85, weight_decay=0.0153, bias_scaler=64.0, label_smoothing=0.2,
           whiten_bias_epochs=3, translate=2, widths=(64, 256, 256), batchnorm_momentum=0.6, scaling_factor=1 / 9)

data = np.load(args.data)
MEAN = torch.tensor((0.4914, 0.4822, 0.4465)).view(1, 3, 1, 1)
STD = torch.tensor((0.2470, 0.2435, 0.2616)).view(1, 3, 1, 1)


def tensor(split):
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
        Conv(3, 24, 2, padding=0, bias=True), nn.GELU(),
        ConvGroup(24, w[0], m), ConvGroup(w[0], w[1], m), ConvGroup(w[1], w[2], m),
        nn.MaxPool2d(3), nn.Flatten(), nn.Linear(w[2], 10, bias=False), Mul(hyp["scaling_factor"]),
    )
    net[0].weight.requires_grad = False
    return net.to(memory_format=torch.channels_last)


def init_whitening_conv(layer, images, eps=5e-4):
    c, (h, w) = images.shape[1], layer.weight.shape[2:]
    patches = images.unfold(2, h, 1).unfold(3, w, 1).transpose(1, 3).reshape(-1, c, h, w).float()
    flat = patches.view(len(patches), -1)
    eigenvalues, eigenvectors = torch.linalg.eigh(flat.T @ flat / len(flat), UPLO="U")
    eigenvalues, eigenvectors = eigenvalues.flip(0).view(-1, 1, 1, 1), eigenvectors.T.reshape(c * h * w, c, h, w).flip(0)
    scaled = eigenvectors / torch.sqrt(eigenvalues + eps)
    layer.weight.data[:] = torch.cat((scaled, -scaled))


def autocast():
    return torch.autocast("cpu", dtype=DTYPE) if DTYPE else torch.autocast("cpu", enabled=False)


def infer(net, images):
    def mirror(x):
        return 0.5 * net(x) + 0.5 * net(x.flip(-1))

    net.eval()
    outs = {"none": [], "tta": []}
    with torch.no_grad(), autocast():
        for x in images.split(1000):
            base = net(x).float()
            logits = 0.5 * base + 0.5 * net(x.flip(-1)).float()
            padded = F.pad(x, (1,) * 4, "reflect")
            shifted = [mirror(padded[:, :, 0:32, 0:32]).float(), mirror(padded[:, :, 2:34, 2:34]).float()]
            outs["none"].append(base)
            outs["tta"].append(0.5 * logits + 0.5 * torch.stack(shifted).mean(0))
    return {k: torch.cat(v) for k, v in outs.items()}


def accuracy(net, split):
    x, y = tensor(split)
    return {k: (v.argmax(1) == y).float().mean().item() for k, v in infer(net, x).items()}


def main():
    x_train, y_train = tensor("train")
    bs, momentum = hyp["batch_size"], hyp["momentum"]
    kilostep_scale = 1024 * (1 + 1 / (1 - momentum))
    lr, wd = hyp["lr"] / kilostep_scale, hyp["weight_decay"] * bs / kilostep_scale
    lr_biases = lr * hyp["bias_scaler"]
    steps_per_epoch = len(x_train) // bs
    total = ceil(steps_per_epoch * EPOCHS)

    net = make_net()
    norm_biases = [p for k, p in net.named_parameters() if "norm" in k and p.requires_grad]
    others = [p for k, p in net.named_parameters() if "norm" not in k and p.requires_grad]
    optimizer = torch.optim.SGD(
        [dict(params=norm_biases, lr=lr_biases, weight_decay=wd / lr_biases), dict(params=others, lr=lr, weight_decay=wd / lr)],
        momentum=momentum, nesterov=True,
    )
    xp, fp = [0, int(0.23 * total), total], [0.2, 1.0, 0.07]
    schedule = np.interp(np.arange(total + 1), xp, fp)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: schedule[i])
    alpha = 0.95**5 * (np.arange(total + 1) / total) ** 3
    slow = {k: v.clone() for k, v in net.state_dict().items()}

    def lookahead(decay):
        for (k, s), v in zip(slow.items(), net.state_dict().values()):
            if v.dtype in (torch.half, torch.float):
                s.lerp_(v, 1 - decay)
                v.copy_(s)

    loss_fn = nn.CrossEntropyLoss(label_smoothing=hyp["label_smoothing"], reduction="none")
    started = time.perf_counter()
    init_whitening_conv(net[0], x_train[:5000])
    flipped = torch.where((torch.rand(len(x_train)) < 0.5).view(-1, 1, 1, 1), x_train.flip(-1), x_train)
    pad = hyp["translate"]
    padded = F.pad(flipped, (pad,) * 4, "reflect")
    step, train_time = 0, 0.0
    for epoch in range(ceil(EPOCHS)):
        t0 = time.perf_counter()
        net[0].bias.requires_grad = epoch < hyp["whiten_bias_epochs"]
        shifts = torch.randint(-pad, pad + 1, size=(len(x_train), 2))
        images = torch.empty_like(x_train)
        for sy in range(-pad, pad + 1):
            for sx in range(-pad, pad + 1):
                mask = (shifts[:, 0] == sy) & (shifts[:, 1] == sx)
                images[mask] = padded[mask, :, pad + sy : pad + sy + 32, pad + sx : pad + sx + 32]
        if epoch % 2 == 1:
            images = images.flip(-1)
        order = torch.randperm(len(images))
        net.train()
        for i in range(steps_per_epoch):
            idx = order[i * bs : (i + 1) * bs]
            with autocast():
                outputs = net(images[idx].contiguous(memory_format=torch.channels_last))
                loss = loss_fn(outputs.float(), y_train[idx]).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            if step % 5 == 0:
                lookahead(alpha[step])
            if step >= total:
                lookahead(1.0)
                break
        train_time += time.perf_counter() - t0
        train_acc = (outputs.argmax(1) == y_train[idx]).float().mean().item()
        print(f"epoch {epoch + 1}: {time.perf_counter() - t0:.0f} s, train batch acc {train_acc:.4f}, "
              f"loss {loss.item() / bs:.4f}, train time so far {train_time / 60:.1f} min", flush=True)
    print(f"trained {EPOCHS} epochs in {train_time / 60:.1f} min (wall {(time.perf_counter() - started) / 60:.1f})")
    for split in ("val", "test"):
        print(split, accuracy(net, split), flush=True)


main()
