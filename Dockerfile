# LMP in a container, for docker-compose.yml and the Kubernetes DaemonSet (deploy/kubernetes/).
# Two stages. The first compiles the collectors' kernel code into CO-RE objects (clang, llvm, libbpf-dev)
# and installs the project; the image is the second, which takes the project with its objects and carries
# no compiler, LLVM or kernel headers: libbpf fits the objects to the host's kernel through its BTF.
# (lmp scenario, whose recorder still compiles with BCC at each run, is not available in the image.)
FROM debian:12-slim AS build
WORKDIR /opt/lmp
COPY . /opt/lmp
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends ca-certificates nodejs npm clang llvm libbpf-dev >/dev/null \
    && bash scripts/install.sh --image \
    && .venv/bin/lmp build

FROM debian:12-slim
WORKDIR /opt/lmp
COPY --from=build /opt/lmp /opt/lmp
# --image: the runtime packages (libbpf1, bpftool, Python); the venv and the front-end libraries came
# with the project, so nothing is downloaded for them. linux-libc-dev: syscall names (asm/unistd_64.h).
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends ca-certificates util-linux mount linux-libc-dev >/dev/null \
    && bash scripts/install.sh --image \
    && rm -rf /var/lib/apt/lists/*
ENV PATH=/opt/lmp/.venv/bin:$PATH
ENTRYPOINT ["/opt/lmp/scripts/container-start.sh"]
CMD ["lmp", "run", "--no-prometheus"]
