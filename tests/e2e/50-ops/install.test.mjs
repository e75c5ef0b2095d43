// Packaging: `cmake --install` of the build under test into a temporary DESTDIR puts the
// binary, libherald.a, the public headers, herald.pc, herald(1) and the systemd units
// where they belong; the man page renders without warnings; pkg-config finds the library
// and a small program that includes herald.h compiles and links against the installed
// copy; the installed units pass `systemd-analyze verify`. Tools that are missing (groff,
// pkg-config, systemd-analyze) skip their part with a reason. Every child is bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { heraldBin } from '../helpers/herald.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const sourceDir = path.resolve(here, '../../..');

/** The build directory: HERALD_BUILD_DIR (CTest sets it), else the one HERALD_BIN is in. */
function buildDir() {
  if (process.env.HERALD_BUILD_DIR) return process.env.HERALD_BUILD_DIR;
  let d = path.dirname(path.resolve(heraldBin()));
  for (let i = 0; i < 4; i++, d = path.dirname(d)) {
    if (fs.existsSync(path.join(d, 'CMakeCache.txt'))) return d;
  }
  return null;
}

function run(cmd, args, { env, timeoutMs = 120000, cwd } = {}) {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8', timeout: timeoutMs, cwd, env: { ...process.env, ...env },
  });
  return { code: r.status, stdout: r.stdout || '', stderr: r.stderr || '', error: r.error };
}

function have(cmd, args = ['--version']) {
  const r = run(cmd, args, { timeoutMs: 10000 });
  return !r.error && r.code === 0;
}

function cacheValue(build, name) {
  const text = fs.readFileSync(path.join(build, 'CMakeCache.txt'), 'utf8');
  const m = new RegExp(`^${name}:[A-Z]+=(.*)$`, 'm').exec(text);
  return m ? m[1] : '';
}

const build = buildDir();
const cmake = process.env.HERALD_CMAKE || 'cmake';
const skip = !build ? 'no CMake build directory (set HERALD_BUILD_DIR)'
  : !have(cmake) ? 'cmake is not installed' : false;

const TINY = `#include <herald.h>
#include <stdio.h>

int main(void)
{
    hr_server_options_t o;
    hr_server_options_init(&o);
    o.port = 0;
    char err[256];
    hr_server_t *s = hr_server_create(&o, err, sizeof(err));
    if (!s) {
        fprintf(stderr, "%s\\n", err);
        return 1;
    }
    printf("herald %s %s\\n", HR_VERSION_STRING, hr_err_name(HR_EINVAL));
    hr_server_destroy(s);
    return 0;
}
`;

test('cmake --install: files, man page, pkg-config, linking, systemd units', { skip, timeout: 600000 }, async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-install-'));
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const dest = path.join(tmp, 'dest');
  const r = run(cmake, ['--install', build, '--prefix', '/usr/local'], { env: { DESTDIR: dest } });
  assert.equal(r.code, 0, `cmake --install failed:\n${r.stdout}\n${r.stderr}`);
  const root = path.join(dest, 'usr/local');
  const at = (p) => path.join(root, p);

  // The files.
  const headers = fs.readdirSync(path.join(sourceDir, 'include/herald')).filter((f) => f.endsWith('.h'));
  assert.ok(headers.length > 0);
  const expected = ['bin/herald', 'lib/libherald.a', 'include/herald.h',
    ...headers.map((h) => `include/herald/${h}`), 'lib/pkgconfig/herald.pc',
    'share/man/man1/herald.1', 'lib/systemd/system/herald.service',
    'lib/systemd/system/herald@.service'];
  for (const f of expected) assert.ok(fs.existsSync(at(f)), `installed: ${f}`);
  assert.ok(fs.statSync(at('bin/herald')).mode & 0o111, 'the binary is executable');
  const v = run(at('bin/herald'), ['--version'], { timeoutMs: 10000 });
  assert.equal(v.code, 0, v.stderr);
  assert.match(v.stdout, /^herald \d+\.\d+\.\d+/);
  const unit = fs.readFileSync(at('lib/systemd/system/herald.service'), 'utf8');
  assert.match(unit, /^ExecStart=\/usr\/local\/bin\/herald serve --config \/etc\/herald\/herald\.conf --handoff-socket \/run\/herald\/handoff\.sock$/m);
  assert.match(fs.readFileSync(at('lib/pkgconfig/herald.pc'), 'utf8'), /^prefix=\/usr\/local$/m);

  await t.test('herald(1) renders without warnings', { skip: !have('groff') && 'groff is not installed' }, () => {
    const g = run('groff', ['-man', '-Tutf8', '-ww', '-z', at('share/man/man1/herald.1')], { timeoutMs: 20000 });
    assert.equal(g.code, 0, g.stderr);
    assert.equal(g.stderr, '', `groff warnings:\n${g.stderr}`);
    const text = run('groff', ['-man', '-Tutf8', at('share/man/man1/herald.1')], { timeoutMs: 20000 })
      .stdout.replace(/.\x08/g, '').replace(/\u2010/g, '-'); // overstrike bold, hyphens
    for (const section of ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'OPTIONS', 'SIGNALS', 'FILES', 'EXIT STATUS', 'SEE ALSO']) {
      assert.match(text, new RegExp(`^${section}$`, 'm'), `section ${section}`);
    }
    // Every option `herald serve --help` lists is documented.
    const help = run(heraldBin(), ['serve', '--help'], { timeoutMs: 10000 }).stdout;
    const options = [...help.matchAll(/^ {2}(--[a-z-]+)/gm)].map((m) => m[1]);
    assert.ok(options.length > 20, 'serve --help lists its options');
    for (const o of options) assert.ok(text.includes(o), `herald(1) documents ${o}`);
  });

  await t.test('pkg-config finds herald and a program links against the installed library',
    { skip: !have('pkg-config') && 'pkg-config is not installed' }, () => {
      const env = {
        PKG_CONFIG_PATH: at('lib/pkgconfig'),
        PKG_CONFIG_SYSROOT_DIR: dest, // the files are staged under DESTDIR
      };
      const pc = run('pkg-config', ['--cflags', '--libs', 'herald'], { env, timeoutMs: 10000 });
      assert.equal(pc.code, 0, pc.stderr);
      assert.match(pc.stdout, /-lherald/);
      assert.ok(pc.stdout.includes(`-I${at('include')}`), pc.stdout);
      const mv = run('pkg-config', ['--modversion', 'herald'], { env, timeoutMs: 10000 });
      assert.equal(mv.code, 0, mv.stderr);
      assert.match(mv.stdout.trim(), /^\d+\.\d+\.\d+$/);

      fs.writeFileSync(path.join(tmp, 'tiny.c'), TINY);
      // A sanitized build's library needs the sanitizer runtime (and that build's compiler).
      const sanitize = cacheValue(build, 'HERALD_SANITIZE');
      const cc = sanitize ? cacheValue(build, 'CMAKE_C_COMPILER') || 'cc' : 'cc';
      const flags = pc.stdout.trim().split(/\s+/);
      if (sanitize) flags.push(`-fsanitize=${sanitize}`);
      const c = run(cc, ['-std=c11', '-Wall', '-Wextra', '-Werror', '-o', path.join(tmp, 'tiny'),
        path.join(tmp, 'tiny.c'), ...flags], { timeoutMs: 120000 });
      assert.equal(c.code, 0, `${cc} failed:\n${c.stderr}`);
      const out = run(path.join(tmp, 'tiny'), [], { timeoutMs: 10000, env: { ASAN_OPTIONS: 'detect_leaks=1' } });
      assert.equal(out.code, 0, out.stderr);
      assert.equal(out.stdout.trim(), `herald ${mv.stdout.trim()} HR_EINVAL`);
    });

  await t.test('the systemd units pass systemd-analyze verify',
    { skip: !have('systemd-analyze') && 'systemd-analyze is not installed' }, () => {
      // Installed to a real prefix (no DESTDIR) so that ExecStart names a binary that exists.
      const prefix = path.join(tmp, 'opt');
      const i = run(cmake, ['--install', build, '--prefix', prefix]);
      assert.equal(i.code, 0, i.stderr);
      const units = path.join(prefix, 'lib/systemd/system');
      const svc = fs.readFileSync(path.join(units, 'herald.service'), 'utf8');
      assert.ok(svc.includes(`ExecStart=${prefix}/bin/herald serve`), 'ExecStart follows the prefix');
      // A template is verified as one of its instances.
      fs.copyFileSync(path.join(units, 'herald@.service'), path.join(units, 'herald@blue.service'));
      for (const u of ['herald.service', 'herald@blue.service']) {
        const a = run('systemd-analyze', ['verify', '--man=no', path.join(units, u)], { timeoutMs: 60000 });
        const ours = a.stderr.split('\n').filter((l) => l.includes('herald'));
        assert.deepEqual(ours, [], `systemd-analyze verify ${u}:\n${a.stderr}`);
      }
      for (const key of ['NoNewPrivileges=yes', 'ProtectSystem=strict', 'ProtectHome=yes', 'PrivateTmp=yes',
        'PrivateDevices=yes', 'ProtectKernelTunables=yes', 'ProtectKernelModules=yes', 'ProtectKernelLogs=yes',
        'ProtectControlGroups=yes', 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX', 'RestrictNamespaces=yes',
        'LockPersonality=yes', 'MemoryDenyWriteExecute=yes', 'SystemCallFilter=@system-service',
        'CapabilityBoundingSet=\n', 'LimitNOFILE=1048576', 'ExecReload=/bin/kill -HUP $MAINPID',
        'Restart=on-failure', 'RuntimeDirectory=herald']) {
        assert.ok(svc.includes(key), `herald.service has ${key.trim()}`);
      }
    });
});
