/** The console's style sheet, served as /assets/console.css (the CSP allows no inline style). */
export const consoleCss = `
body { font-family: system-ui, sans-serif; margin: 0; color: #1d232a; background: #f7f8fa; }
header { display: flex; gap: 1.5rem; align-items: center; padding: .6rem 1.2rem; background: #24313f; color: #fff; }
header a { color: #dfe8f2; margin-right: 1rem; text-decoration: none; }
header a:hover { text-decoration: underline; }
header .signout { margin-left: auto; display: flex; gap: .6rem; align-items: center; }
main { padding: 1rem 1.2rem; max-width: 80rem; }
h1 { font-size: 1.4rem; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #dde2e8; vertical-align: top; }
th { background: #eef1f5; }
td.wrap { overflow-wrap: anywhere; }
dl.fields { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; background: #fff; padding: .8rem; }
dl.fields dt { font-weight: 600; }
dl.fields dd { margin: 0; overflow-wrap: anywhere; white-space: pre-wrap; }
pre.body { background: #fff; padding: .8rem; white-space: pre-wrap; overflow-wrap: anywhere; }
iframe.body { width: 100%; height: 28rem; border: 1px solid #c9d0d8; background: #fff; }
form.filters { display: flex; flex-wrap: wrap; gap: .6rem; align-items: end; margin-bottom: 1rem; }
form.filters label { display: flex; flex-direction: column; font-size: .85rem; }
form.login { display: flex; flex-direction: column; gap: .6rem; max-width: 20rem; }
.demo-login { margin-top: 1.5rem; padding: .6rem 1rem; max-width: 40rem; background: #fff6dc; border: 1px solid #e8d39a; }
.problems { color: #8a1c1c; background: #fdecec; padding: .6rem 1.6rem; }
.results { color: #1d5b2a; background: #e8f6ec; padding: .6rem 1.6rem; }
form.actions, .bulk { display: flex; gap: .6rem; margin: .8rem 0; }
form.send-test { display: flex; flex-direction: column; gap: .6rem; max-width: 36rem; }
form.send-test label { display: flex; flex-direction: column; }
form.admin fieldset { display: grid; grid-template-columns: repeat(auto-fill, minmax(16rem, 1fr)); gap: .6rem; background: #fff; }
form.admin label, .secret { display: flex; flex-direction: column; font-size: .85rem; }
label.check { flex-direction: row; gap: .4rem; align-items: center; }
.hint { font-size: .8rem; color: #56606b; }
.done { color: #1c5a2a; background: #e8f6ec; padding: .6rem 1rem; }
.warnings { color: #6b4a00; background: #fff6dc; padding: .6rem 1.6rem; }
form.inline { display: inline-flex; gap: .4rem; align-items: center; margin: 0; }
.stalled { color: #8a1c1c; font-weight: 700; }
.pager { display: flex; gap: 1rem; margin: .8rem 0; }
.counts { display: flex; gap: 1rem; flex-wrap: wrap; }
.counts div { background: #fff; padding: .6rem 1rem; border: 1px solid #dde2e8; }
.counts b { display: block; font-size: 1.4rem; }
`;
