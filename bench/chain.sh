# Sourced by the benchmarks: write NONCE LAST writes the bench chain, as a spec file
# ($work/image.yaml) and as the equivalent Dockerfile FROM $from ($work/ctx/Dockerfile): a
# trixie Python base, apt-get install -y git (NONCE makes it new), python3 -c 'print(1)' (LAST
# makes it new), ENV X=1. Also median. Times are read from bash's $EPOCHREALTIME, with no
# process started for the clock, so a row is the timed command's own time plus its fork and exec.
mkdir -p "$work/ctx"
write() { # nonce last
  cat > "$work/image.yaml" <<YAML
image:
  - debian_slim: {python_version: "3.13"}
  - run_commands: {commands: ["apt-get update && apt-get install -y git # $1"]}
  - run_commands: {commands: ["python3 -c 'print(1)' # $2"]}
  - env: {vars: {X: "1"}}
YAML
  cat > "$work/ctx/Dockerfile" <<DOCKERFILE
FROM $from
RUN apt-get update && apt-get install -y git # $1
RUN python3 -c 'print(1)' # $2
ENV X=1
DOCKERFILE
  chmod -R a+rX "$work/image.yaml" "$work/ctx"
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
