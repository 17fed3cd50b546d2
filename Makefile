# Everything is built with CGO_ENABLED=0: syscall.AllThreadsSyscall, which sets
# PR_SET_IO_FLUSHER on every daemon thread, refuses to run in a cgo binary.
export CGO_ENABLED := 0
GO      ?= go
BINS    := ublkctl sheep dog
BIN_DIR := bin

.PHONY: all build test test-host test-race test-lab demo bench fuzz clean FORCE

all: build

build: $(addprefix $(BIN_DIR)/,$(BINS))

$(BIN_DIR)/%: FORCE
	@mkdir -p $(BIN_DIR)
	$(GO) build -trimpath -o $@ ./cmd/$*

# The README's test command: host tests first, then the lab end-to-end suite.
test: test-host test-lab

test-host:
	$(GO) vet ./...
	$(GO) test -count=1 ./...

clean:
	rm -rf $(BIN_DIR) out
