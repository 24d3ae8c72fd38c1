package main

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/cemaf-go/cemaf/llm"
)

// The LLM's settings follow the device mode: CEMAF_LLM_MODEL is the model
// of every mode, CEMAF_LLM_MODEL_<MODE> (CEMAF_LLM_MODEL_HIGH_TEMP, …) that
// of one mode; CEMAF_LLM_MAX_TOKENS[_<MODE>] caps the answer's tokens and
// CEMAF_LLM_MAX_CONCURRENT[_<MODE>] the calls under way at once. They
// become the llm client's profiles (llm.Options.Profile, Profiles): each
// call takes the profile of the mode in force when it starts, and its
// record names that mode.

// llmModes are the device modes an LLM setting can be given for, as the
// llm package names them; the variables spell them in upper case.
var llmModes = []string{"normal", "low_memory", "high_temp", "low_disk"}

// Prefixes of the LLM variables.
const (
	envLLMModel         = "CEMAF_LLM_MODEL"
	envLLMMaxTokens     = "CEMAF_LLM_MAX_TOKENS"
	envLLMMaxConcurrent = "CEMAF_LLM_MAX_CONCURRENT"
)

// Bounds of the LLM's numeric settings.
const (
	maxLLMTokens     = 1 << 20
	maxLLMConcurrent = 256
)

// defaultLLMModel is the model name sent when CEMAF_LLM_MODEL is not set
// (llama.cpp's server ignores it).
const defaultLLMModel = "local"

// llmTemperature is the sampling temperature of answers: low, for answers
// that stay with the passages.
const llmTemperature = 0.2

// llmSettings are the llm client's profiles.
type llmSettings struct {
	Profile  llm.Profile
	Profiles map[string]llm.Profile
}

// llmModels reads CEMAF_LLM_MODEL_<MODE>: the model of each mode that has
// its own, by mode name ("high_temp" → "qwen2.5:0.5b"). A suffix that is
// not a mode, or an empty model, is an error naming the variable.
func llmModels(env []string) (map[string]string, []error) {
	var models map[string]string
	var errs []error
	for _, name := range modeVars(env, envLLMModel) {
		v, _ := lookupEnv(env, name)
		mode, err := modeOf(name, envLLMModel, v)
		if err == nil && strings.TrimSpace(v) == "" {
			err = &settingError{Name: name, Value: v, Origin: "environment", Problem: "empty", Accepted: "a model name the server knows"}
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if models == nil {
			models = map[string]string{}
		}
		models[mode] = strings.TrimSpace(v)
	}
	return models, errs
}

// llmProfiles builds the profiles from the base model, the per-mode models
// (llmModels, or those a resumed run recorded) and the environment's
// CEMAF_LLM_MAX_TOKENS[_<MODE>] and CEMAF_LLM_MAX_CONCURRENT[_<MODE>]. It
// reports every bad variable at once, each named with its accepted range.
func llmProfiles(env []string, model string, models map[string]string) (llmSettings, error) {
	temp := llmTemperature
	ps := llmSettings{Profile: llm.Profile{Model: model, Temperature: &temp, MaxConcurrent: 1}}
	var errs []error
	num := func(name string, lo, hi int, accepted string) (int, bool) {
		v, ok := lookupEnv(env, name)
		if !ok || v == "" {
			return 0, false
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		switch {
		case err != nil:
			errs = append(errs, &settingError{Name: name, Value: v, Origin: "environment", Problem: "not an integer", Accepted: accepted})
			return 0, false
		case n < lo || n > hi:
			errs = append(errs, &settingError{Name: name, Value: v, Origin: "environment", Problem: "out of range", Accepted: accepted})
			return 0, false
		}
		return n, true
	}
	tokens := fmt.Sprintf("an integer in [0, %d] (0 leaves the answer's length to the server)", maxLLMTokens)
	conc := fmt.Sprintf("an integer in [1, %d]", maxLLMConcurrent)
	if n, ok := num(envLLMMaxTokens, 0, maxLLMTokens, tokens); ok {
		ps.Profile.MaxTokens = n
	}
	if n, ok := num(envLLMMaxConcurrent, 1, maxLLMConcurrent, conc); ok {
		ps.Profile.MaxConcurrent = n
	}
	per := map[string]llm.Profile{}
	for mode, m := range models {
		p := per[mode]
		p.Model = m
		per[mode] = p
	}
	for _, prefix := range []string{envLLMMaxTokens, envLLMMaxConcurrent} {
		for _, name := range modeVars(env, prefix) {
			v, _ := lookupEnv(env, name)
			mode, err := modeOf(name, prefix, v)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			p := per[mode]
			if prefix == envLLMMaxTokens {
				if n, ok := num(name, 1, maxLLMTokens, fmt.Sprintf("an integer in [1, %d]", maxLLMTokens)); ok {
					p.MaxTokens = n
				}
			} else if n, ok := num(name, 1, maxLLMConcurrent, conc); ok {
				p.MaxConcurrent = n
			}
			per[mode] = p
		}
	}
	if len(errs) > 0 {
		return llmSettings{}, &invalidSettings{errs: errs}
	}
	if len(per) > 0 {
		ps.Profiles = per
	}
	return ps, nil
}

// modeVars lists the variables of env named prefix_<SUFFIX>, sorted.
func modeVars(env []string, prefix string) []string {
	names := map[string]bool{}
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if rest, ok := strings.CutPrefix(k, prefix+"_"); ok && rest != "" {
			names[k] = true
		}
	}
	return slices.Sorted(maps.Keys(names))
}

// modeOf returns the mode a variable prefix_<MODE> is for, or an error
// naming it and the modes accepted.
func modeOf(name, prefix, value string) (string, error) {
	mode := strings.ToLower(strings.TrimPrefix(name, prefix+"_"))
	if !slices.Contains(llmModes, mode) {
		var known []string
		for _, m := range llmModes {
			known = append(known, prefix+"_"+strings.ToUpper(m))
		}
		return "", &settingError{Name: name, Value: value, Origin: "environment",
			Problem: fmt.Sprintf("%q is not a device mode", strings.TrimPrefix(name, prefix+"_")), Accepted: strings.Join(known, ", ")}
	}
	return mode, nil
}

// inLLMModelOf is the name of the recorded input that holds the model of
// mode ("llm_model_high_temp").
func inLLMModelOf(mode string) string { return inLLMModel + "_" + mode }

// modelSource is the variable that sets a recorded per-mode model, for the
// message that refuses a change ("" for another input).
func modelSource(input string) string {
	mode, ok := strings.CutPrefix(input, inLLMModel+"_")
	if !ok {
		return ""
	}
	return envLLMModel + "_" + strings.ToUpper(mode)
}

// llmEnv checks every LLM variable of env and returns the per-mode models:
// each bad one is reported, named with what it accepts.
func llmEnv(env []string) (map[string]string, error) {
	models, errs := llmModels(env)
	if _, err := llmProfiles(env, defaultLLMModel, nil); err != nil {
		var is *invalidSettings
		if errors.As(err, &is) {
			errs = append(errs, is.errs...)
		} else {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, &invalidSettings{errs: errs}
	}
	return models, nil
}

// addLLMProfiles lists, for pi-agent config, the LLM variables of env that
// set a mode profile, or the reason they are refused.
func addLLMProfiles(env []string, add func(name, value, source string)) {
	if _, err := llmEnv(env); err != nil {
		add("LLM profiles", "", "refused: "+strings.ReplaceAll(err.Error(), "\n", "; "))
		return
	}
	for _, prefix := range []string{envLLMModel, envLLMMaxTokens, envLLMMaxConcurrent} {
		names := modeVars(env, prefix)
		if prefix != envLLMModel {
			names = append([]string{prefix}, names...)
		}
		for _, name := range names {
			if v, ok := lookupEnv(env, name); ok && v != "" {
				add("LLM "+strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, "CEMAF_LLM_"), "_", " ")), v, name)
			}
		}
	}
}
