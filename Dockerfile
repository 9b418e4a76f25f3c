# LMP in a container, for docker-compose.yml and the Kubernetes DaemonSet (deploy/kubernetes/). The image
# is built by the same install script as a host: Debian 12, BCC, the project in /opt/lmp/.venv.
FROM debian:12-slim
WORKDIR /opt/lmp
COPY . /opt/lmp
# --image: packages and the project only; the kernel side (headers, tracefs, BPF) is the host's and is
# checked when the container starts. The image's own Debian headers move to /opt/lmp/headers, because the
# container mounts the host's /usr/src over its own (the host's headers win when they match its kernel).
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends ca-certificates nodejs npm util-linux mount >/dev/null \
    && bash scripts/install.sh --image \
    && mkdir -p /opt/lmp/headers && mv /usr/src/linux-headers-* /opt/lmp/headers/ \
    && rm -rf /var/lib/apt/lists/*
ENV PATH=/opt/lmp/.venv/bin:$PATH
ENTRYPOINT ["/opt/lmp/scripts/container-start.sh"]
CMD ["lmp", "run", "--no-prometheus"]
