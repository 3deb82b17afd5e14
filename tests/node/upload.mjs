// Upload one file with tus-js-client, as the tests in tests/test_tus_clients.py ask:
//   node upload.mjs ENDPOINT FILE TARGET [--during-creation] [--interrupt]
// --during-creation sends the first chunk with the POST (creation-with-upload);
// --interrupt aborts the upload halfway (the PATCH's connection is dropped) and resumes it
// with a new Upload on the same URL, as a reloaded page would.
// Prints "uploaded URL" and exits 0, or prints the error and exits 1.
import * as fs from 'node:fs'
import { Upload } from 'tus-js-client'

const [endpoint, path, target, ...flags] = process.argv.slice(2)
const data = fs.readFileSync(path)
const options = {
  endpoint,
  chunkSize: 1024 * 1024,
  retryDelays: [0, 200, 500, 1000, 2000],
  metadata: { filename: target },
  uploadDataDuringCreation: flags.includes('--during-creation'),
  storeFingerprintForResuming: false,
  onError (error) {
    console.error(`error: ${error}`)
    process.exit(1)
  },
  onSuccess () {
    console.log(`uploaded ${this.url ?? ''}`)
  }
}

let interrupted = !flags.includes('--interrupt')
const upload = new Upload(data, {
  ...options,
  onSuccess () { console.log(`uploaded ${upload.url}`) },
  onProgress (sent, total) {
    if (interrupted || sent < total / 2) return
    interrupted = true
    upload.abort().then(() => {
      console.log(`interrupted at ${sent} of ${total}`)
      const resumed = new Upload(data, {
        ...options,
        uploadUrl: upload.url,
        onSuccess () { console.log(`uploaded ${resumed.url}`) }
      })
      resumed.start()
    })
  }
})
upload.start()
