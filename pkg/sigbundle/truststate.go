package sigbundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/cnab-airgap/cnab-airgap/internal/fsutil"
	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
)

// TrustState is what an offline importer remembers of the Notary trust
// data it accepted: per GUN, the highest version of each TUF role. Offline
// there is no timestamp server to prove freshness, so this is the rollback
// protection that is left: trust data older than what was accepted before
// (an old, validly signed release replayed in a new archive) is refused
// with ErrRollback. The file is small JSON, written atomically.
type TrustState struct {
	// Version is the file format version (1).
	Version int `json:"version"`
	// GUNs maps each GUN to what was accepted for it.
	GUNs map[string]*GUNState `json:"guns"`
	// TUF maps each Sigstore TUF repository, named by the sha256 of the
	// root it was pinned to ("sha256:<hex>", SigstoreTrustInfo.PinnedRoot),
	// to the role versions accepted from it (carried Sigstore trust
	// material). The URL the archive names is not signed, so it cannot be
	// the key.
	TUF map[string]*GUNState `json:"tuf,omitempty"`
}

// GUNState is the highest accepted version of each role of one GUN.
type GUNState struct {
	Roles map[string]int `json:"roles"`
	// Target is the last target accepted, and Updated when (informational).
	Target  string    `json:"target,omitempty"`
	Updated time.Time `json:"updated,omitzero"`
}

// maxTrustStateBytes caps the state file read into memory.
const maxTrustStateBytes = 16 << 20

// ErrTrustStateFile: the trust state file cannot be read or is not one.
var ErrTrustStateFile = errdefs.New("trust state file", errdefs.ErrUnavailable)

// ReadTrustState reads a trust state file. A file that does not exist yet
// is an empty state (the first import creates it).
func ReadTrustState(path string) (*TrustState, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return &TrustState{Version: 1, GUNs: map[string]*GUNState{}, TUF: map[string]*GUNState{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrTrustStateFile, path, err)
	}
	defer f.Close()
	return decodeTrustState(path, f)
}

func decodeTrustState(path string, r io.Reader) (*TrustState, error) {
	raw, err := io.ReadAll(io.LimitReader(r, maxTrustStateBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrTrustStateFile, path, err)
	}
	if len(raw) > maxTrustStateBytes {
		return nil, fmt.Errorf("%w %s: larger than %d bytes", ErrTrustStateFile, path, maxTrustStateBytes)
	}
	s := &TrustState{}
	if len(bytes.TrimSpace(raw)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(s); err != nil {
			return nil, fmt.Errorf("%w %s: %w", ErrTrustStateFile, path, err)
		}
		if s.Version != 1 {
			return nil, fmt.Errorf("%w %s: version %d is not supported (1 is)", ErrTrustStateFile, path, s.Version)
		}
	}
	s.Version = 1
	if s.GUNs == nil {
		s.GUNs = map[string]*GUNState{}
	}
	if s.TUF == nil {
		s.TUF = map[string]*GUNState{}
	}
	for _, m := range []map[string]*GUNState{s.GUNs, s.TUF} {
		for g, st := range m {
			if st == nil || st.Roles == nil {
				m[g] = &GUNState{Roles: map[string]int{}}
			}
		}
	}
	return s, nil
}

// Check refuses trust data older than the state remembers: any role of
// info's GUN whose version is lower than the highest accepted before.
func (s *TrustState) Check(info *NotaryInfo) error {
	if s == nil {
		return nil
	}
	st := s.GUNs[info.GUN]
	if st == nil {
		return nil
	}
	older, last := st.older(info.Roles)
	if len(older) == 0 {
		return nil
	}
	return &Error{Kind: "notary", GUN: info.GUN, Err: wrapf(ErrRollback,
		"the carried trust data for target %s is older than trust data accepted before%s: %s", info.Target, last, strings.Join(older, ", "))}
}

// CheckTUF refuses carried Sigstore TUF metadata older than the state
// remembers for its repository (a rollback, by the TUF rules).
func (s *TrustState) CheckTUF(info *SigstoreTrustInfo) error {
	if s == nil || info.PinnedRoot == "" || s.TUF[info.PinnedRoot] == nil {
		return nil
	}
	older, last := s.TUF[info.PinnedRoot].older(info.Roles)
	if len(older) == 0 {
		return nil
	}
	return wrapf(ErrRollback, "the carried Sigstore TUF metadata of %s is older than metadata accepted before%s: %s", info.URL, last, strings.Join(older, ", "))
}

// older lists the roles whose version is below the remembered one, and
// says what was accepted last.
func (st *GUNState) older(roles []RoleInfo) (older []string, last string) {
	for _, r := range roles {
		if seen, ok := st.Roles[r.Name]; ok && r.Version < seen {
			older = append(older, fmt.Sprintf("%s version %d < %d", r.Name, r.Version, seen))
		}
	}
	if st.Target != "" {
		last = fmt.Sprintf(" (target %s was accepted", st.Target)
		if !st.Updated.IsZero() {
			last += " on " + st.Updated.UTC().Format(time.RFC3339)
		}
		last += ")"
	}
	return older, last
}

// Record raises the state to the versions a verification accepted: the
// Notary trust data and the Sigstore TUF metadata it used.
func (s *TrustState) Record(rep *Report, now time.Time) {
	raise := func(m map[string]*GUNState, key, target string, roles []RoleInfo) {
		st := m[key]
		if st == nil {
			st = &GUNState{Roles: map[string]int{}}
			m[key] = st
		}
		for _, r := range roles {
			st.Roles[r.Name] = max(st.Roles[r.Name], r.Version)
		}
		st.Target = target
		st.Updated = now.UTC().Truncate(time.Second)
	}
	for _, info := range rep.Notary {
		raise(s.GUNs, info.GUN, info.Target, info.Roles)
	}
	if t := rep.Sigstore; t != nil && t.Used && t.PinnedRoot != "" { // the TUF chain was checked and used
		if s.TUF == nil {
			s.TUF = map[string]*GUNState{}
		}
		raise(s.TUF, t.PinnedRoot, TrustedRootTarget+" sha256:"+t.TrustedRootSHA256+" from "+t.URL, t.Roles)
	}
}

// RecordTrustState adds the versions rep accepted to the trust state file at
// path: under an exclusive lock (two imports at once do not lose each
// other's update), read again, raised, written to a temporary file in the
// same directory and renamed over it.
func RecordTrustState(path string, rep *Report, now time.Time) error {
	if rep == nil || (len(rep.Notary) == 0 && (rep.Sigstore == nil || !rep.Sigstore.Used)) {
		return nil
	}
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("%w %s: %w", ErrTrustStateFile, path, err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("%w %s: lock: %w", ErrTrustStateFile, path, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // released on close anyway
	s, err := ReadTrustState(path)
	if err != nil {
		return err
	}
	s.Record(rep, now)
	raw, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(path, append(raw, '\n'), 0o600); err != nil {
		return fmt.Errorf("%w %s: %w", ErrTrustStateFile, path, err)
	}
	return nil
}
